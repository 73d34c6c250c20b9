"""Only the backend module may know NumPy from CuPy: layers, losses, optimizers, the conv
functions and gradcheck go through ``xp = get_array_module(x)``."""
import ast
from pathlib import Path

import pytest

import scratchnet

PKG = Path(scratchnet.__file__).parent
ARRAY_CODE = sorted([*PKG.glob("nn/*.py"), *PKG.glob("functional/*.py"), PKG / "optim.py",
                     PKG / "gradcheck.py", PKG / "models.py", PKG / "layout.py", PKG / "ops.py"])


@pytest.mark.parametrize("path", ARRAY_CODE, ids=lambda p: str(p.relative_to(PKG)))
def test_no_direct_numpy_or_cupy(path):
    tree = ast.parse(path.read_text())
    offenders = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            offenders += [a.name for a in node.names if a.name.split(".")[0] in ("numpy", "cupy")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("numpy", "cupy"):
            offenders.append(node.module)
        elif isinstance(node, ast.Name) and node.id in ("np", "numpy", "cp", "cupy"):
            offenders.append(node.id)
    assert not offenders, f"{path.name} uses {sorted(set(offenders))}; use scratchnet.backend"


def test_rule_covers_the_layers():
    assert {str(p.relative_to(PKG)) for p in ARRAY_CODE} >= {
        "nn/conv.py", "nn/activation.py", "nn/loss.py", "optim.py", "functional/conv.py",
        "functional/norm.py", "functional/activation.py", "nn/linear.py", "functional/linear.py"}


def test_importing_scratchnet_does_not_import_cupy():
    import subprocess
    import sys
    code = "import sys, scratchnet, scratchnet.models; print('cupy' in sys.modules)"
    assert subprocess.check_output([sys.executable, "-c", code], text=True).strip() == "False"
