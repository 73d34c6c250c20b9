"""The CuPy stand-in (tests/fake_cupy) is strict: planted misuse fails under it, and it exposes
only names (and keywords) that real CuPy has. Runs in the normal suite, in subprocesses."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

STAND_IN = Path(__file__).parent / "fake_cupy"
NAMES = json.loads((Path(__file__).parent / "data" / "cupy_names.json").read_text())


def run_with_stand_in(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(STAND_IN), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.mark.parametrize("misuse", [
    "numpy.asarray(cupy.zeros(3))",                                   # implicit host copy
    "numpy.exp(cupy.zeros(3))",                                       # a NumPy ufunc on device data
    "numpy.concatenate([cupy.zeros(3), cupy.zeros(3)])",              # a NumPy function
    "cupy.zeros(3) + numpy.ones(3)",                                  # host array mixed in
    "numpy.ones(3) * cupy.zeros(3)",
    "cupy.maximum(cupy.zeros(3), numpy.ones(3))",
    "a = cupy.zeros(3); a[...] = numpy.ones(3)",                      # host value assigned
    "cupy.zeros(3)[numpy.array([0, 1])]",                             # host index array
    "cupy.sum(cupy.zeros(3), where=cupy.ones(3, dtype=bool))",        # a NumPy-only keyword
    "cupy.clip(cupy.zeros(3), min=0, max=1)",                         # NumPy 2's names, not CuPy's
    "cupy.random.default_rng(0).permutation(5)",                      # not in CuPy's Generator
])
def test_planted_misuse_raises(misuse):
    r = run_with_stand_in(f"import cupy, numpy\n{misuse}")
    assert r.returncode != 0
    assert "TypeError" in r.stderr or "AttributeError" in r.stderr, r.stderr


def test_correct_use_works_and_device_arrays_dispatch_to_the_stand_in():
    r = run_with_stand_in(
        "import cupy, numpy\n"
        "from scratchnet import backend\n"
        "a = cupy.asarray(numpy.arange(6, dtype=numpy.float32)).reshape(2, 3)\n"
        "b = cupy.maximum(a * 2.0 + numpy.float32(1), 0)\n"
        "assert backend.get_array_module(b) is cupy and backend.is_available('cupy')\n"
        "assert float(b.sum()) == 36.0 and b.get().dtype == numpy.float32\n"
        "print('ok')")
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_stand_in_exposes_only_real_cupy_names():
    r = run_with_stand_in(
        "import cupy, json, inspect\n"
        "spaces = {'cupy': cupy, 'cupy.random': cupy.random, 'cupy.lib.stride_tricks': "
        "cupy.lib.stride_tricks, 'cupy.cuda': cupy.cuda, 'cupy.cuda.runtime': cupy.cuda.runtime}\n"
        "print(json.dumps({k: [n for n in vars(m) if not n.startswith('_') and not "
        "inspect.ismodule(getattr(m, n)) and n not in ('annotations', 'Any')] for k, m in spaces.items()}))")
    assert r.returncode == 0, r.stderr
    exposed = json.loads(r.stdout)
    real = NAMES["namespaces"]
    for space, names in exposed.items():
        extra = sorted(set(names) - set(real[space]))
        assert not extra, f"{space} exposes names real CuPy {NAMES['version']} lacks: {extra}"
    assert len(exposed["cupy"]) > 80
