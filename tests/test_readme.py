"""The README's Python examples run, and print what they say."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_examples():
    assert BLOCKS


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_block_runs(code, capsys):
    exec(compile(code, str(README), "exec"), {})
    out = capsys.readouterr().out
    if "print(report)" in code:                  # seeded: the same report every run
        assert out.startswith("gradcheck ConvTranspose2d(3, 2, kernel_size=(3, 2)") and "passed" in out
        exec(compile(code, str(README), "exec"), {})
        assert capsys.readouterr().out == out
