"""A strict stand-in for CuPy, for tests only: ``SCRATCHNET_FAKE_CUPY=1 python -m pytest -m gpu``.

It keeps the GPU code path honest on machines without a GPU. Arrays are NumPy arrays in a
wrapper whose type lives in module ``cupy`` (so ``scratchnet.backend`` dispatches to it exactly
as to real CuPy), and CuPy's rules are enforced where they matter for correctness:

* implicit conversion to the host is a ``TypeError`` (``numpy.asarray(a)``, any NumPy
  function or ufunc applied to a device array); ``a.get()`` is the way to the host;
* mixing a device array with a NumPy array in one operation is a ``TypeError`` (Python and
  NumPy scalars are fine), as is indexing or assigning with NumPy arrays;
* only names that exist in real CuPy are exposed, with only the keyword arguments CuPy
  accepts (both read from ``tests/data/cupy_names.json``, taken from a real install);
* ``cupy.cuda.runtime.getDeviceCount()`` reports one device.

What it cannot check: speed, real kernels (``ElementwiseKernel`` exists but cannot run CUDA C;
the fused kernels are switched off under the stand-in), memory limits, and the numerics of
cuBLAS and CUDA's math library. Its bit generators are NumPy's (``Philox4x3210(seed)`` draws
the same stream as ``numpy.random.default_rng(seed)``), so a run on the stand-in can be
compared with a NumPy run exactly.
"""
from __future__ import annotations

import json
import os
import sys
import types
from typing import Any

import numpy

__version__ = "14.2.0 (scratchnet test stand-in)"

with open(os.path.join(os.path.dirname(__file__), "..", "..", "data", "cupy_names.json")) as _f:
    _NAMES = json.load(_f)
_REAL = _NAMES["namespaces"]
_UFUNC_KEYWORDS = {"out", "dtype", "casting"}
_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to "
             "construct a NumPy array explicitly.")


def _check_keywords(namespace: str, name: str, kwargs: dict) -> None:
    spec = _REAL[namespace].get(name, "missing")
    if spec == "missing":
        raise AttributeError(f"module '{namespace}' has no attribute '{name}' in real CuPy")
    allowed = _UFUNC_KEYWORDS if spec == "ufunc" else (None if spec is None else set(spec))
    bad = sorted(set(kwargs) - allowed) if allowed is not None else []
    if bad:
        raise TypeError(f"{namespace}.{name}() got an unexpected keyword argument '{bad[0]}' "
                        "(not accepted by CuPy)")


def _host(x: Any, what: str) -> Any:
    """Unwrap device arrays; refuse NumPy arrays (CuPy never converts them implicitly)."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, numpy.ndarray):
        raise TypeError(f"Unsupported type {type(x)} in {what}: a NumPy array cannot be mixed "
                        "with a CuPy array (move it with cupy.asarray)")
    if isinstance(x, (list, tuple)):
        return type(x)(_host(v, what) for v in x)
    return x


def _wrap(x: Any) -> Any:
    if isinstance(x, numpy.ndarray):
        return ndarray(x)
    if isinstance(x, numpy.generic):                 # CuPy returns 0-d arrays, not scalars
        return ndarray(numpy.asarray(x))
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


class ndarray:
    """A device array: a NumPy array that refuses to be treated as one."""

    __array_ufunc__ = None                           # NumPy ufuncs on device arrays: TypeError
    __array_priority__ = 1000

    def __init__(self, a: numpy.ndarray):
        object.__setattr__(self, "_a", a)

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(_IMPLICIT)

    def __array_function__(self, func: Any, types_: Any, args: Any, kwargs: Any) -> Any:
        raise TypeError(f"numpy.{func.__name__}() on a CuPy array: {_IMPLICIT}")

    # --- attributes --------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray(self._a.T))

    def get(self, stream: Any = None, order: str = "C", out: Any = None, blocking: bool = True
            ) -> numpy.ndarray:
        return numpy.array(self._a, order=order)

    def __getattr__(self, name: str) -> Any:
        if name not in _REAL["cupy.ndarray"] or not hasattr(self._a, name):
            raise AttributeError(f"'cupy.ndarray' object has no attribute '{name}'")
        method = getattr(self._a, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return _wrap(method(*_host(args, f"ndarray.{name}"),
                                **{k: _host(v, f"ndarray.{name}") for k, v in kwargs.items()}))
        return call

    # --- conversions ---------------------------------------------------------------------
    def __float__(self) -> float:
        return float(self._a)

    def __int__(self) -> int:
        return int(self._a)

    def __bool__(self) -> bool:
        return bool(self._a)

    def __index__(self) -> int:
        return self._a.__index__()

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Any:
        return (_wrap(v) for v in self._a)

    def __repr__(self) -> str:
        return repr(self._a).replace("array(", "cupy_standin_array(", 1)

    def __getitem__(self, index: Any) -> Any:
        return _wrap(self._a[_host(index, "indexing")])

    def __setitem__(self, index: Any, value: Any) -> None:
        self._a[_host(index, "indexing")] = _host(value, "assignment")

    def __neg__(self) -> "ndarray":
        return ndarray(-self._a)

    def __pos__(self) -> "ndarray":
        return ndarray(+self._a)

    def __abs__(self) -> "ndarray":
        return ndarray(numpy.absolute(self._a))

    def __invert__(self) -> "ndarray":
        return ndarray(~self._a)


def _binary(op: str) -> None:
    def forward(self: ndarray, other: Any) -> Any:
        return _wrap(getattr(self._a, f"__{op}__")(_host(other, f"'{op}'")))

    def reflected(self: ndarray, other: Any) -> Any:
        return _wrap(getattr(self._a, f"__r{op}__")(_host(other, f"'{op}'")))

    def inplace(self: ndarray, other: Any) -> ndarray:
        getattr(self._a, f"__i{op}__")(_host(other, f"'{op}'"))
        return self
    setattr(ndarray, f"__{op}__", forward)
    setattr(ndarray, f"__r{op}__", reflected)
    setattr(ndarray, f"__i{op}__", inplace)


for _op in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or",
            "xor", "lshift", "rshift"):
    _binary(_op)
for _op in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(ndarray, f"__{_op}__", (lambda op: lambda self, other: _wrap(
        getattr(self._a, f"__{op}__")(_host(other, f"'{op}'"))))(_op))
ndarray.__hash__ = None


# --- module functions -----------------------------------------------------------------------
def _function(name: str, namespace: str = "cupy", impl: Any = None) -> Any:
    target = impl if impl is not None else getattr(numpy, name)

    def fn(*args: Any, **kwargs: Any) -> Any:
        _check_keywords(namespace, name, kwargs)
        return _wrap(target(*_host(args, f"cupy.{name}"),
                            **{k: _host(v, f"cupy.{name}") for k, v in kwargs.items()}))
    fn.__name__ = name
    return fn


def asarray(a: Any, dtype: Any = None, order: Any = None, copy: Any = None, blocking: bool = False
            ) -> ndarray:
    """Host data (NumPy arrays, lists, scalars) is copied to the "device"; device arrays stay."""
    if isinstance(a, ndarray):
        return a if dtype is None or numpy.dtype(dtype) == a.dtype else ndarray(a._a.astype(dtype))
    return ndarray(numpy.array(a, dtype=dtype, order=order or "K", copy=True))


def array(obj: Any, dtype: Any = None, copy: bool = True, order: str = "K", subok: bool = False,
          ndmin: int = 0, blocking: bool = False) -> ndarray:
    host = obj._a if isinstance(obj, ndarray) else obj
    return ndarray(numpy.array(host, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def asnumpy(a: Any, stream: Any = None, order: str = "C", out: Any = None, blocking: bool = True
            ) -> numpy.ndarray:
    return a.get(order=order) if isinstance(a, ndarray) else numpy.asarray(a, order=order)


_FUNCTIONS = ["zeros", "zeros_like", "ones", "ones_like", "empty", "empty_like", "full", "full_like",
              "arange", "linspace", "where", "maximum", "minimum", "sqrt", "exp", "log", "abs",
              "absolute", "tanh", "sign", "square", "clip", "concatenate", "stack", "mean", "sum",
              "var", "std", "max", "min", "amax", "amin", "argmax", "argmin", "prod", "matmul",
              "dot", "tensordot", "broadcast_to", "ascontiguousarray", "asfortranarray",
              "isfinite", "isnan", "isinf", "reshape", "transpose", "moveaxis", "repeat",
              "take_along_axis", "expand_dims", "squeeze", "allclose", "array_equal", "all",
              "any", "logical_and", "logical_or", "logical_not", "equal", "greater", "less",
              "multiply", "add", "subtract", "divide", "negative", "power", "count_nonzero",
              "cumsum", "split", "eye", "diag", "einsum", "pad", "flip", "histogram", "logaddexp"]
for _name in _FUNCTIONS:
    if _name in _REAL["cupy"] and hasattr(numpy, _name):
        globals()[_name] = _function(_name)

for _name in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
              "uint16", "uint32", "uint64", "bool_", "dtype", "pi", "inf", "nan", "newaxis"):
    globals()[_name] = getattr(numpy, _name)


class ElementwiseKernel:
    """Exists in CuPy; the stand-in cannot compile or run CUDA C."""

    def __init__(self, in_params: str, out_params: str, operation: str, name: str = "kernel",
                 **kwargs: Any):
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"ElementwiseKernel '{self.name}': the CuPy stand-in cannot run "
                                  "CUDA C; run with scratchnet.kernels.use_fused_kernels(False)")


# --- memory pools -------------------------------------------------------------------------
class _Pool:
    def free_all_blocks(self, stream: Any = None) -> None:
        pass

    def used_bytes(self) -> int:
        return 0

    def total_bytes(self) -> int:
        return 0


_pool, _pinned_pool = _Pool(), _Pool()


def get_default_memory_pool() -> _Pool:
    return _pool


def get_default_pinned_memory_pool() -> _Pool:
    return _pinned_pool


# --- submodules: cupy.random, cupy.lib.stride_tricks, cupy.cuda(.runtime) -------------------
def _submodule(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    sys.modules[name] = module
    return module


random = _submodule("cupy.random")


class _BitGenerator:
    def __init__(self, seed: Any = None):
        self._numpy = numpy.random.PCG64(seed)       # same stream as numpy.random.default_rng


class _Generator:
    """cupy.random.Generator's methods (only those CuPy has: no permutation, no shuffle)."""

    def __init__(self, bit_generator: _BitGenerator):
        self._g = numpy.random.Generator(bit_generator._numpy)
        self.bit_generator = bit_generator

    def __getattr__(self, name: str) -> Any:
        if name not in _REAL["cupy.random.Generator"] or not hasattr(self._g, name):
            raise AttributeError(f"'cupy.random.Generator' object has no attribute '{name}'")
        return _function(name, "cupy.random.Generator", getattr(self._g, name))


random.Generator = _Generator
for _name in ("XORWOW", "MRG32k3a", "Philox4x3210"):
    setattr(random, _name, type(_name, (_BitGenerator,), {}))
random.default_rng = lambda seed=None: _Generator(random.XORWOW(seed))
random.random = _function("random", "cupy.random", lambda size=None, dtype=float:
                          numpy.random.random(size).astype(dtype))

lib = _submodule("cupy.lib")
lib.stride_tricks = _submodule("cupy.lib.stride_tricks")
lib.stride_tricks.as_strided = _function(
    "as_strided", "cupy.lib.stride_tricks", numpy.lib.stride_tricks.as_strided)

cuda = _submodule("cupy.cuda")
cuda.runtime = _submodule("cupy.cuda.runtime")
cuda.runtime.getDeviceCount = lambda: 1
cuda.runtime.runtimeGetVersion = lambda: 0
cuda.runtime.getDeviceProperties = lambda device: {"name": b"CuPy stand-in (no GPU)",
                                                   "totalGlobalMem": 0}


class _Device:
    def __init__(self, device: Any = None):
        self.id = 0

    def synchronize(self) -> None:
        pass


cuda.Device = _Device
cuda.MemoryPool, cuda.PinnedMemoryPool = _Pool, _Pool
