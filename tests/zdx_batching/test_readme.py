"""The README's example runs and gives what it shows (docstrings: tests/test_docstrings.py)."""

import pathlib
import re

import numpy as np


def test_the_readme_example_runs():
    readme = pathlib.Path(__file__).parents[2] / "packages" / "zdx-batching" / "README.md"
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(), re.S)
    assert blocks
    namespace: dict = {}
    exec(compile(blocks[0], str(readme), "exec"), namespace)
    np.testing.assert_allclose(np.asarray(namespace["H"]), np.asarray(namespace["F"]), rtol=1e-12)
