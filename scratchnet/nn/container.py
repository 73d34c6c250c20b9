"""ModuleList (a container, no forward or backward of its own) and Identity."""
from __future__ import annotations

import operator
from typing import Any, Iterable, Iterator

from .module import Module

Array = Any

_CONTAINER = ("{name} is a container, not a layer: it has no {what}. Call its layers in your "
              "model's forward (for layer in self.layers: x = layer(x)) and their backward in "
              "reverse order in your model's backward (for layer in reversed(self.layers): "
              "g = layer.backward(g)); nn.Sequential does both")


class ModuleList(Module):
    """A list of modules, registered so that ``parameters()``, ``to()``, ``state_dict()``
    and ``train()``/``eval()`` see them (names "0", "1", ... as in PyTorch).

    Supports ``append``, ``extend``, ``insert``, indexing (an int gives a module, a slice a
    new ModuleList of the same modules), assignment and ``del`` by index, ``len``, ``iter``
    and ``+=``. It has no forward and no backward: the model that holds it calls its layers
    in forward and their backward in reverse order in its own backward.
    """

    def __init__(self, modules: Iterable[Module] | None = None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _index(self, index: int) -> int:
        i = operator.index(index)
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"ModuleList index {index} is out of range for {n} modules")
        return i % n

    def _reset(self, modules: list[Module]) -> None:
        """Register ``modules`` as "0", "1", ... in place of the current entries."""
        for name in list(self._modules):
            delattr(self, name)
        for i, m in enumerate(modules):
            self._add(str(i), m)

    def _add(self, name: str, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList: entry {name} is a {type(module).__name__}, expected a Module")
        setattr(self, name, module)

    def append(self, module: Module) -> "ModuleList":
        self._add(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> "ModuleList":
        if isinstance(modules, Module) and not hasattr(modules, "__iter__"):
            raise TypeError("ModuleList.extend expects an iterable of Modules, got a "
                            f"{type(modules).__name__}; use append for one module")
        for m in list(modules):
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        modules = list(self)
        modules.insert(index, module)
        self._reset(modules)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return ModuleList(list(self)[index])
        return self._modules[str(self._index(index))]

    def __setitem__(self, index: int, module: Module) -> None:
        self._add(str(self._index(index)), module)

    def __delitem__(self, index: int | slice) -> None:
        modules = list(self)
        if isinstance(index, slice):
            del modules[index]
        else:
            del modules[self._index(index)]
        self._reset(modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def __iadd__(self, modules: Iterable[Module]) -> "ModuleList":
        return self.extend(modules)

    def __add__(self, other: Iterable[Module]) -> "ModuleList":
        return ModuleList([*self, *other])

    def forward(self, *args: Any) -> Any:
        raise NotImplementedError(_CONTAINER.format(name="ModuleList", what="forward"))

    def backward(self, grad_output: Array) -> Array:
        raise NotImplementedError(_CONTAINER.format(name="ModuleList", what="backward"))


class Identity(Module):
    """Returns its input; backward returns the upstream gradient. Constructor arguments
    are accepted and ignored, as in PyTorch (a placeholder that keeps a model's shape)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__()

    def forward(self, x: Array) -> Array:
        return x

    def backward(self, grad_output: Array) -> Array:
        return grad_output
