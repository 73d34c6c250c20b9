"""The table of ops, and `override`: the one place where any op can be swapped.

Every forward and backward function of `scratchnet.functional`, the optimiser's update
`scratchnet.optim.adam_step` and the U-Net's backward wiring `scratchnet.models.unet_backward`
is an *op*: a plain function, registered in `OPS` under its
name by the `op` decorator. The layers call ops, one for their forward pass and one for their
backward pass; a call of an op runs, in this order:

1. the function given for its name to `override`, while that with-block runs;
2. a faster body registered for it with `register_faster` (a fused CUDA kernel from
   `scratchnet.kernels` on CuPy, the blocked convolution of `scratchnet.blocked` on the
   CPU), when one applies to the arguments and no override is active;
3. its own body: the readable array code that the docs and the course show.

For example, every `nn.ReLU` of a model runs your function inside this block, and
`scratchnet.gradcheck` then checks the real layer with your math in it:

    with scratchnet.override(relu_backward=my_relu_backward):
        report = scratchnet.gradcheck(model, x)

The replacing function takes the op's arguments and returns what the op returns (each op's
docstring says what that is). Inside it, a call of the *same* op goes to the library's own
version, so a replacement can wrap the library:
``override(col2im=lambda *args: 2 * F.col2im(*args))``. Calls of other ops go through the
table as usual: with `col2im` overridden, the library's `conv2d_grad_input` runs your col2im.

While any override is active, the faster bodies are off and everything runs the readable
code that overrides replace parts of (the test suite holds every faster body to that code),
except a body that the arguments themselves select (``always=True``: the blocked
convolution's backward, for the cache its own forward made). So enter the override before
the forward pass whose backward it should change. Overrides nest (the innermost wins for a
name) and are undone when the block exits, also after an error; like `no_grad` they are
process-wide, not per thread.
"""
from __future__ import annotations

import contextlib
import functools
import types
from dataclasses import dataclass
from typing import Any, Callable, Iterator

__all__ = ["OPS", "op", "override", "overrides", "reference", "register_faster"]

Fn = Callable[..., Any]

_ops: dict[str, Fn] = {}
OPS = types.MappingProxyType(_ops)       # op name -> the op (read-only)
_overrides: dict[str, Fn] = {}
_running: set[str] = set()               # overrides executing now (their own op: the library's)
_faster: dict[str, list["_Body"]] = {}


@dataclass(frozen=True)
class _Body:
    fn: Fn
    applies: Callable[..., bool]
    always: bool


def op(fn: Fn) -> Fn:
    """Register ``fn`` as the op of its name and return the op that dispatches to it.

    The op has ``fn``'s name, signature and docstring; ``op.reference`` is ``fn`` itself.
    """
    name = fn.__name__
    bodies = _faster.setdefault(name, [])

    @functools.wraps(fn)
    def dispatch(*args: Any, **kwargs: Any) -> Any:
        if _overrides:
            replacement = _overrides.get(name)
            if replacement is not None and name not in _running:
                _running.add(name)
                try:
                    return replacement(*args, **kwargs)
                finally:
                    _running.discard(name)
        for body in bodies:
            if (body.always or not _overrides) and body.applies(*args, **kwargs):
                return body.fn(*args, **kwargs)
        return fn(*args, **kwargs)

    dispatch.reference = fn                # type: ignore[attr-defined]
    _ops[name] = dispatch
    return dispatch


def register_faster(name: str, applies: Callable[..., bool], *, always: bool = False
                    ) -> Callable[[Fn], Fn]:
    """Decorator: register a faster body for the op ``name``.

    Args:
        name: the op's name (it may be defined before or after this registration).
        applies: called with the op's arguments; True when this body should run them.
        always: select this body even while an override is active (for a body that must run
            because of what its arguments are, not because it is faster).

    The body takes the op's arguments and must return what the op's own body returns, to
    float rounding; bodies are tried in the order they were registered.
    """
    def register(body: Fn) -> Fn:
        _faster.setdefault(name, []).append(_Body(body, applies, always))
        return body
    return register


@contextlib.contextmanager
def override(**replacements: Fn) -> Iterator[None]:
    """``with override(name=fn, ...):`` runs ``fn`` wherever the op ``name`` is called.

    Raises:
        ValueError: a name is not an op (the message lists the ops).
        TypeError: a replacement is not callable.
    """
    for name, fn in replacements.items():
        if name not in _ops:
            raise ValueError(f"override: there is no op named {name!r}; the ops are "
                             + ", ".join(sorted(_ops)))
        if not callable(fn):
            raise TypeError(f"override: {name} must be a function, got {type(fn).__name__}")
    saved = dict(_overrides)
    _overrides.update(replacements)
    try:
        yield
    finally:
        _overrides.clear()
        _overrides.update(saved)


def overrides() -> dict[str, Fn]:
    """The overrides active now: op name -> the replacing function (a copy)."""
    return dict(_overrides)


def reference(name: str) -> Fn:
    """The op's own body (its readable array code), bypassing overrides and faster bodies."""
    return _ops[name].reference            # type: ignore[attr-defined]
