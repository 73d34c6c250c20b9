"""Print the public names of a real CuPy install as JSON (the stand-in may expose only these).

    python tests/data/list_cupy_names.py > tests/data/cupy_names.json

Needs CuPy installed (no GPU needed: only names and signatures are read). For each namespace:
name -> list of keyword parameters when Python can read the signature, "ufunc" for CuPy
ufuncs (which take out=, dtype=, casting=), or null.
"""
import inspect
import json

import cupy
import cupy.lib.stride_tricks


def describe(obj):
    if type(obj).__name__ == "ufunc":
        return "ufunc"
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return None                                        # takes any keyword
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


cupy.random.Generator                                      # loaded lazily: load it before dir()


def public(namespace):
    return {n: describe(getattr(namespace, n)) for n in sorted(dir(namespace)) if not n.startswith("_")}


names = {"version": cupy.__version__, "namespaces": {
    "cupy": public(cupy), "cupy.ndarray": public(cupy.ndarray), "cupy.random": public(cupy.random),
    "cupy.random.Generator": public(cupy.random.Generator),
    "cupy.lib.stride_tricks": public(cupy.lib.stride_tricks), "cupy.cuda": public(cupy.cuda),
    "cupy.cuda.runtime": public(cupy.cuda.runtime), "cupy.cuda.Device": public(cupy.cuda.Device),
    "cupy.cuda.MemoryPool": public(cupy.cuda.MemoryPool),
    "cupy.cuda.PinnedMemoryPool": public(cupy.cuda.PinnedMemoryPool)}}
print(json.dumps(names, indent=1, sort_keys=True))
