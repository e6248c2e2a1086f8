"""The README's examples run as written (a newcomer copies them first)."""
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index):
    if "import torch" in BLOCKS[index]:
        pytest.importorskip("torch")
    exec(compile(BLOCKS[index], f"README.md example {index}", "exec"), {})
