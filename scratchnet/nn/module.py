"""Parameter, Module and Sequential: the containers every layer is built on.

A Module computes ``y = module(x)`` and keeps in ``self._cache`` exactly what its backward
needs; ``module.backward(gy)`` returns dL/dx and *adds* dL/dparam into each ``param.grad``.
A module instance holds the cache of its *last* forward only, so a layer that is applied twice
in one forward pass needs two instances (stateless layers such as pooling cost nothing to
duplicate).

State that is not trained (batch-norm running statistics) lives in *buffers*, as in PyTorch:
plain arrays registered with ``register_buffer``, saved in ``state_dict()``, moved and cast by
``to()``, and never returned by ``parameters()``, so no optimizer sees them.

Hooks work as in PyTorch, fitted to manual backward: ``register_forward_pre_hook`` and
``register_forward_hook`` run around ``forward`` when the module is called;
``register_full_backward_pre_hook`` and ``register_full_backward_hook`` run around the
module's ``backward``, whoever calls it (a container's backward, or your own code). Every
``backward`` a subclass defines is wrapped once, when the class is created, so no layer does
anything for its hooks; a module without hooks pays one dictionary lookup.
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import weakref
from collections import OrderedDict
from typing import Any, Callable, Iterator

from ..backend import (BACKEND_NAMES, as_dtype, backend_name, get_array_module, get_backend,
                       to_backend)

Array = Any

_grad_enabled = True
_depth = 0          # how many Module calls are running (0: none; 1: a top-level call)
_call_id = 0        # counts top-level calls: a layer's cache belongs to the one it was made in
_root: "Module | None" = None         # the module of the running top-level call


class _NoCache:
    """What a layer holds after a forward under `no_grad`: nothing for backward."""

    def __repr__(self) -> str:
        return "<no cache: forward ran under no_grad()>"


NO_CACHE = _NoCache()        # a layer that skips work under no_grad() stores this itself


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """``with scratchnet.no_grad():`` runs forward passes that keep nothing for backward.

    Every layer's forward stores what its backward needs (im2col matrices, masks, inputs) in
    ``self._cache``; for inference that is only memory: a width-16 U-Net at 100 images keeps
    about 150 MB of it. Inside this block those stores are dropped, so each intermediate is
    freed as soon as the next layer has used it, and layers skip work done only for backward
    (ReLU's mask, max pooling's argmax; batch norm in eval mode becomes one scale and one
    shift per channel). Results are the same up to float rounding. A ``backward`` after such
    a forward raises a one-line RuntimeError saying so. Nests; restores the
    previous setting on exit, also after an error. The setting is process-wide.
    """
    global _grad_enabled
    previous = _grad_enabled
    _grad_enabled = False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled() -> bool:
    """False inside [`no_grad`][scratchnet.nn.no_grad]."""
    return _grad_enabled


class Parameter:
    """A trainable array and its accumulated gradient.

    Attributes:
        data: the array (any backend).
        grad: same shape, backend and dtype as ``data``; backward passes add into it with
            ``+=`` until ``zero_grad()`` resets it to zeros. It is never None: assigning
            ``p.grad = None`` (a PyTorch idiom for clearing it) fills it with zeros, because
            every backward adds into this array.
        requires_grad: False freezes the parameter: no optimizer updates it and gradient
            clipping leaves its grad alone (``module.requires_grad_(False)`` freezes a whole
            model). Backward passes still compute its gradient.
    """

    def __init__(self, data: Array, requires_grad: bool = True):
        self._data = data
        self._grad = get_array_module(data).zeros_like(data)
        self.requires_grad = bool(requires_grad)

    @property
    def data(self) -> Array:
        return self._data

    @data.setter
    def data(self, value: Array) -> None:
        """Replace the array: same shape required; ``grad`` follows a new backend or dtype
        (as fresh zeros), so a backward never mixes precisions or devices."""
        if not hasattr(value, "shape") or not hasattr(value, "dtype"):
            raise TypeError(f"Parameter.data must be an array, got {type(value).__name__}")
        if tuple(value.shape) != tuple(self._data.shape):
            raise ValueError(f"Parameter.data: the new array has shape {tuple(value.shape)}, "
                             f"the parameter's shape is {tuple(self._data.shape)}")
        xp = get_array_module(value)
        if value.dtype != self._grad.dtype or get_array_module(self._grad) is not xp:
            self._grad = xp.zeros_like(value)
        self._data = value

    @property
    def grad(self) -> Array:
        return self._grad

    @grad.setter
    def grad(self, value: Array | None) -> None:
        """``p.grad += g`` (what backward does) keeps the array; ``p.grad = None`` zeros it;
        any other array must have the parameter's shape."""
        if value is self._grad:
            return
        if value is None:
            self._grad.fill(0)
            return
        if tuple(getattr(value, "shape", ())) != tuple(self._data.shape) or not hasattr(value, "dtype"):
            raise ValueError(f"Parameter.grad must be an array of the parameter's shape "
                             f"{tuple(self._data.shape)}, got "
                             f"{tuple(value.shape) if hasattr(value, 'shape') else type(value).__name__}")
        self._grad = value

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def numel(self) -> int:
        """The number of elements (PyTorch's name for ``size``)."""
        return self.data.size

    def requires_grad_(self, requires_grad: bool = True) -> "Parameter":
        """Set ``requires_grad`` in place and return the parameter (PyTorch's spelling)."""
        self.requires_grad = bool(requires_grad)
        return self

    def zero_grad(self) -> None:
        self._grad.fill(0)

    def to(self, backend: str | None = None, dtype: Any = None) -> "Parameter":
        """Move (and/or cast) data and grad in place; the Parameter object stays the same."""
        for name in ("_data", "_grad"):                  # grad keeps its values here
            a = getattr(self, name)
            if backend is not None:
                a = to_backend(a, backend)
            if dtype is not None and a.dtype != dtype:
                a = a.astype(dtype)
            setattr(self, name, a)
        return self

    def __repr__(self) -> str:
        frozen = "" if self.requires_grad else ", requires_grad=False"
        return (f"Parameter(shape={self.shape}, dtype={self.dtype}, "
                f"backend={backend_name(self.data)}{frozen})")


class Module:
    """Base class: registers Parameters and sub-Modules in assignment order, like PyTorch.

    A subclass writes ``forward`` and, because scratchnet has no autograd, ``backward``:
    it receives dL/d(output), adds dL/dparam into each parameter's ``grad`` and returns
    dL/d(input). A model built from layers chains their backward calls in reverse order of
    its forward; a computation in ``forward`` that is not a layer (a ``functional`` call, an
    array expression) needs its derivative written there too, or the model trains on a wrong
    gradient without any error: ``scratchnet.gradcheck(model, x[:2])`` finds that.
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_cache", None)
        for name in _HOOK_TABLES:
            object.__setattr__(self, name, OrderedDict())

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Wrap the ``backward`` a subclass defines so that its backward hooks run."""
        super().__init_subclass__(**kwargs)
        backward = cls.__dict__.get("backward")
        if callable(backward) and not hasattr(backward, "_runs_hooks"):
            cls.backward = _run_backward_hooks(backward)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_cache":                      # what backward needs, unless under no_grad()
            object.__setattr__(self, name, value if _grad_enabled or value is None else NO_CACHE)
            return
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        if name in self._buffers and not isinstance(value, (Parameter, Module)):
            self._buffers[name] = value           # e.g. self.running_mean = new array
            object.__setattr__(self, name, value)
            return
        target = (self._parameters if isinstance(value, Parameter) else
                  self._modules if isinstance(value, Module) else None)
        for registry in (self._parameters, self._buffers, self._modules):
            if registry is not target:           # a name lives in one registry at most
                registry.pop(name, None)
        if target is not None:
            target[name] = value                 # replacing keeps the name's place (order)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, array: Array) -> None:
        """Add non-trained state (an array) saved in ``state_dict()`` and moved by ``to()``."""
        if not hasattr(array, "shape") or not hasattr(array, "dtype"):
            raise TypeError(f"{type(self).__name__}.register_buffer: '{name}' must be an array, "
                            f"got {type(array).__name__}")
        self.__setattr__(name, None)              # drop any parameter/module of that name
        self._buffers[name] = array
        object.__setattr__(self, name, array)

    # --- forward / backward -----------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the forward pre-hooks, ``forward`` and the forward hooks.

        Raises:
            RuntimeError: this instance already ran in the same top-level call and its
                backward has not consumed that run's cache (one layer used twice).
        """
        global _depth, _call_id, _root
        d = self.__dict__
        if _depth:
            if _grad_enabled and d.get("_cache_call") == _call_id:
                cache = d.get("_cache")
                if cache is not None and cache is not NO_CACHE:
                    _raise_used_twice(self)
        else:
            _call_id += 1
            _root = self
        _depth += 1
        try:
            if d.get("_forward_pre_hooks") or d.get("_forward_hooks"):
                out = self._forward_with_hooks(args, kwargs)
            else:
                out = self.forward(*args, **kwargs)
        finally:
            _depth -= 1
            if not _depth:
                _root = None
        d["_out_shape"] = getattr(out, "shape", None)
        d["_cache_call"] = _call_id
        return out

    def _forward_with_hooks(self, args: tuple, kwargs: dict) -> Any:
        for hook in list(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, out)
            if result is not None:
                out = result
        return out

    def forward(self, *args: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward(): a Module subclass "
                                  "defines forward(self, x) (and backward(self, grad_output))")

    def backward(self, grad_output: Array) -> Array:
        name = type(self).__name__
        raise NotImplementedError(
            f"{name} has no backward(): scratchnet has no autograd, so a custom Module writes "
            f"its own; call its layers' backward in reverse order of forward, e.g. "
            f"def backward(self, g): g = self.fc2.backward(g); return self.fc1.backward(g) "
            f"(then check it: scratchnet.gradcheck({name}(...), x[:2]))")

    # --- hooks -----------------------------------------------------------------------
    def register_forward_pre_hook(self, hook: Callable[..., Any], *, prepend: bool = False
                                  ) -> "RemovableHandle":
        """``hook(module, args)`` before every forward; ``args`` is the tuple of positional
        inputs. Returning a value replaces them (a tuple, or one value for one input).

        Returns:
            A handle; ``handle.remove()`` removes the hook.
        """
        return _add_hook(self._forward_pre_hooks, hook, prepend)

    def register_forward_hook(self, hook: Callable[..., Any], *, prepend: bool = False
                              ) -> "RemovableHandle":
        """``hook(module, args, output)`` after every forward. Returning a value replaces
        the output.

        Returns:
            A handle; ``handle.remove()`` removes the hook.
        """
        return _add_hook(self._forward_hooks, hook, prepend)

    def register_full_backward_pre_hook(self, hook: Callable[..., Any], *, prepend: bool = False
                                        ) -> "RemovableHandle":
        """``hook(module, grad_output)`` before the module's backward runs; ``grad_output``
        is the tuple of arguments backward was called with (one array for a layer).
        Returning a value replaces them.

        Returns:
            A handle; ``handle.remove()`` removes the hook.
        """
        return _add_hook(self._backward_pre_hooks, hook, prepend)

    def register_full_backward_hook(self, hook: Callable[..., Any], *, prepend: bool = False
                                    ) -> "RemovableHandle":
        """``hook(module, grad_input, grad_output)`` after the module's backward, whoever
        called it. ``grad_input`` is the tuple of what backward returned (dL/d(input), one
        entry per input), ``grad_output`` the tuple of its arguments. Returning a tuple (or
        one array) replaces ``grad_input``: that is what the caller of backward receives.
        The parameters' grads are final when the hook runs.

        Returns:
            A handle; ``handle.remove()`` removes the hook.
        """
        return _add_hook(self._backward_hooks, hook, prepend)

    def _pop_cache(self, grad_output: Array) -> Any:
        """Return what forward saved and free it, after checking ``grad_output``'s shape.

        Raises:
            RuntimeError: backward without a preceding forward (each backward consumes it).
            ValueError: ``grad_output`` does not have the shape forward returned.
        """
        cache = self._cache
        if cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called without a preceding "
                               "forward(); each backward consumes the values its forward saved")
        if cache is NO_CACHE:
            raise RuntimeError(f"{type(self).__name__}.backward(): the forward ran under "
                               "scratchnet.no_grad(), which keeps nothing for backward; run the "
                               "forward outside no_grad() to train")
        expected = self.__dict__.get("_out_shape")
        got = tuple(getattr(grad_output, "shape", ()))   # a Python number counts as 0-d
        if expected is not None and got != tuple(expected):
            raise ValueError(f"{type(self).__name__}.backward: grad_output has shape "
                             f"{got}, expected {tuple(expected)} "
                             "(the shape forward returned)")
        object.__setattr__(self, "_cache", None)
        return cache

    # --- parameters ----------------------------------------------------------------
    def _named_members(self, table: str, prefix: str, seen: set[int] | None = None
                       ) -> Iterator[tuple[str, Any]]:
        """Entries of ``self.<table>`` (``_parameters`` or ``_buffers``), then the children's,
        with dotted names: registration order, as in PyTorch. An entry shared by two modules
        (``b.weight = a.weight``) is listed once, under its first name, so an optimizer
        updates it once per step."""
        seen = set() if seen is None else seen
        for name, value in getattr(self, table).items():
            if value is not None and id(value) not in seen:
                seen.add(id(value))
                yield prefix + name, value
        for name, m in self._modules.items():
            yield from m._named_members(table, prefix + name + ".", seen)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        return self._named_members("_parameters", prefix)

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Array]]:
        return self._named_members("_buffers", prefix)

    def buffers(self) -> Iterator[Array]:
        for _, b in self.named_buffers():
            yield b

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        """(name, module) of each direct sub-module, in registration order, each once."""
        seen: set[int] = set()
        for name, m in self._modules.items():
            if id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """(dotted name, module) of this module ("" or ``prefix``) and every sub-module,
        depth first in registration order."""
        yield prefix, self
        for name, m in self._modules.items():
            yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator["Module"]:
        """This module and every sub-module, each once (a module held twice is listed once)."""
        seen: set[int] = set()
        for _, m in self.named_modules():
            if id(m) not in seen:
                seen.add(id(m))
                yield m

    def add_module(self, name: str, module: "Module") -> None:
        """Register a sub-module under ``name`` (as ``setattr(self, name, module)``)."""
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"{type(self).__name__}.add_module: the name must be a non-empty "
                           f"string without '.', got {name!r}")
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}.add_module: {name!r} is a "
                            f"{type(module).__name__}, expected a Module")
        self.__setattr__(name, module)

    register_module = add_module

    def get_submodule(self, target: str) -> "Module":
        """The sub-module at a dotted path such as ``"encoder.0"`` ("" is this module)."""
        module = self
        for part in target.split(".") if target else ():
            child = module._modules.get(part)
            if child is None:
                raise AttributeError(f"{type(module).__name__} has no sub-module {part!r} "
                                     f"(looking up {target!r})")
            module = child
        return module

    def apply(self, fn: Callable[["Module"], Any]) -> "Module":
        """Call ``fn`` on every sub-module (children first), then on this module; returns
        ``self``. E.g. ``model.apply(init_weights)`` with a function that calls ``nn.init``
        on the layers it recognises."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Set ``requires_grad`` of every parameter; ``False`` freezes the module (no
        optimizer updates it). Returns ``self``."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's grad to zeros.

        Args:
            set_to_none: accepted for PyTorch code; either value gives zeros, because
                every backward adds into ``grad`` (see ``Optimizer.zero_grad``).
        """
        for p in self.parameters():
            p.zero_grad()

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    # --- modes, backend, dtype ---------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        for _, m in self.named_modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def to(self, *args: Any, backend: str | None = None, dtype: Any = None) -> "Module":
        """Move parameters to a backend and/or cast them, in place; returns ``self``.

        ``model.to("cupy")``, ``model.to("float64")``, ``model.to("numpy", "float32")``.
        """
        for a in args:
            if isinstance(a, str) and a.lower() in BACKEND_NAMES:
                backend = a
            else:
                dtype = a
        if backend is not None:
            get_backend(backend)              # clear error before touching anything
        dtype = as_dtype(dtype) if dtype is not None else None
        for p in self.parameters():
            p.to(backend, dtype)
        for _, m in self.named_modules():
            object.__setattr__(m, "_cache", None)
            for name, b in list(m._buffers.items()):
                if backend is not None:
                    b = to_backend(b, backend)
                if dtype is not None and b.dtype.kind == "f":   # counters stay integers
                    b = b.astype(dtype)
                setattr(m, name, b)
        return self

    def float(self) -> "Module":
        return self.to(dtype="float32")

    def double(self) -> "Module":
        return self.to(dtype="float64")

    @property
    def backend(self) -> str:
        """'numpy' or 'cupy': where the parameters live ('numpy' for a parameter-free module)."""
        p = next(self.parameters(), None)
        return "numpy" if p is None else backend_name(p.data)

    @property
    def dtype(self):
        p = next(self.parameters(), None)
        return None if p is None else p.dtype

    # --- state -----------------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, Array]":
        """Parameter and buffer arrays by PyTorch-style dotted names; not copies.

        PyTorch's order: each module's parameters, then its buffers, then its children's.
        """
        out: OrderedDict[str, Array] = OrderedDict()

        def collect(module: Module, prefix: str) -> None:
            out.update((prefix + n, p.data) for n, p in module._parameters.items())
            out.update((prefix + n, b) for n, b in module._buffers.items())
            for n, child in module._modules.items():
                collect(child, prefix + n + ".")
        collect(self, "")
        return out

    def load_state_dict(self, state: dict[str, Array], strict: bool = True) -> None:
        """Copy arrays into the parameters and buffers, keeping each one's backend and dtype.

        Every key, shape and value is checked before anything is copied, so a state that does
        not fit leaves the model as it was.

        Raises:
            KeyError: missing or unexpected keys (with ``strict``).
            ValueError: a shape differs, or a value is not an array of numbers.
        """
        own = self.state_dict()
        name = type(self).__name__
        if strict:
            missing = [k for k in own if k not in state]
            unexpected = [k for k in state if k not in own]
            if missing or unexpected:
                raise KeyError(f"{name}.load_state_dict: missing keys {missing}, "
                               f"unexpected keys {unexpected}")
        pairs = []
        for key, value in state.items():
            if key not in own:
                continue
            target = own[key]
            if not hasattr(value, "shape") or getattr(value.dtype, "kind", "O") not in "fiub":
                raise ValueError(f"{name}.load_state_dict: '{key}' is not an array of numbers "
                                 f"(got {type(value).__name__})")
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(f"{name}.load_state_dict: '{key}' has shape "
                                 f"{tuple(value.shape)}, the model expects {tuple(target.shape)}")
            xp = get_array_module(target)
            pairs.append((target, xp.asarray(to_backend(value, xp), dtype=target.dtype)))
        for target, value in pairs:                # everything fits: now copy
            target[...] = value

    # --- display -----------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, m in self._modules.items():
            child = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        return "\n".join(lines) + "\n)"


_HOOK_TABLES = ("_forward_pre_hooks", "_forward_hooks", "_backward_pre_hooks", "_backward_hooks")
_hook_ids = itertools.count()


class RemovableHandle:
    """What the ``register_*_hook`` methods return: ``handle.remove()`` removes the hook
    (again: nothing happens); ``with handle:`` removes it at the end of the block."""

    def __init__(self, table: "OrderedDict[int, Callable[..., Any]]", key: int):
        self._table, self.id = weakref.ref(table), key

    def remove(self) -> None:
        table = self._table()
        if table is not None:
            table.pop(self.id, None)

    def __enter__(self) -> "RemovableHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def _add_hook(table: "OrderedDict[int, Callable[..., Any]]", hook: Callable[..., Any],
              prepend: bool) -> RemovableHandle:
    if not callable(hook):
        raise TypeError(f"a hook must be callable, got {type(hook).__name__}")
    key = next(_hook_ids)
    table[key] = hook
    if prepend:
        table.move_to_end(key, last=False)
    return RemovableHandle(table, key)


def _run_backward_hooks(backward: Callable[..., Any]) -> Callable[..., Any]:
    """``backward`` with the module's backward pre-hooks and hooks around it. A backward
    that calls ``super().backward`` runs the hooks once, in the outermost call."""

    @functools.wraps(backward)
    def run(self: Module, *args: Any, **kwargs: Any) -> Any:
        d = self.__dict__
        pre_hooks, hooks = d.get("_backward_pre_hooks"), d.get("_backward_hooks")
        if not (pre_hooks or hooks) or d.get("_in_backward"):
            return backward(self, *args, **kwargs)
        grad_output = args + tuple(kwargs.values())   # backward(grad_output) by position or name
        object.__setattr__(self, "_in_backward", True)
        try:
            for hook in list(pre_hooks.values()) if pre_hooks else ():
                result = hook(self, grad_output)
                if result is not None:
                    grad_output = result if isinstance(result, tuple) else (result,)
            grad_input = backward(self, *grad_output)
        finally:
            object.__setattr__(self, "_in_backward", False)
        if not hooks:
            return grad_input
        several = isinstance(grad_input, tuple)
        grads = grad_input if several else (grad_input,)
        for hook in list(hooks.values()):
            result = hook(self, grads, grad_output)
            if result is not None:
                result = result if isinstance(result, tuple) else (result,)
                if len(result) != len(grads):
                    raise ValueError(f"a backward hook of {type(self).__name__} returned "
                                     f"{len(result)} gradients; backward returned {len(grads)}")
                grads = result
        return grads if several else grads[0]

    run._runs_hooks = True
    return run


def _raise_used_twice(module: Module) -> None:
    root = _root
    name = next((n for n, m in root.named_modules() if m is module), None) if root else None
    where = (f"layer '{name}' ({type(module).__name__}) of {type(root).__name__}"
             if name else f"a {type(module).__name__} layer")
    raise RuntimeError(
        f"{where} was called twice in one forward pass; the second call overwrote what the "
        "first saved for backward. A layer instance keeps the cache of one use: give each use "
        f"its own instance (e.g. self.act1 = nn.{type(module).__name__}(...), "
        f"self.act2 = nn.{type(module).__name__}(...))")


@contextlib.contextmanager
def eval_mode(model: Module) -> Iterator[Module]:
    """``with eval_mode(model):`` runs the block in eval mode (batch norm uses its running
    statistics) and restores the mode the model was in, also after an error."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


class Sequential(Module):
    """Runs modules in order; backward runs them in reverse.

    ``Sequential(a, b, c)`` names its children "0", "1", "2" (state_dict keys "0.weight" ...);
    ``Sequential(OrderedDict(name=module, ...))`` keeps the given names. Indexing with an int
    returns a module, with a slice a new Sequential that shares the modules and their names.
    """

    def __init__(self, *modules: Module | "OrderedDict[str, Module]"):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], dict):
            named = list(modules[0].items())
        else:
            named = [(str(i), m) for i, m in enumerate(modules)]
        for name, m in named:
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: entry {name!r} is a {type(m).__name__}, expected a Module")
            setattr(self, name, m)

    def forward(self, x: Array) -> Array:
        for m in self._modules.values():
            x = m(x)
        return x

    def backward(self, grad_output: Array) -> Array:
        for m in reversed(self._modules.values()):
            grad_output = m.backward(grad_output)
        return grad_output

    def __getitem__(self, index: int | slice) -> Module:
        if isinstance(index, slice):
            return Sequential(OrderedDict(list(self._modules.items())[index]))
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())
