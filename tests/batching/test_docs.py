"""The >>> examples of the docstrings run and give what they show."""

import doctest
import importlib
import pathlib
import re

import numpy as np
import pytest

MODULES = [
    "zdx_batching",
    "zdx_batching._hessian",
    "zdx_batching._jacobian",
    "zdx_batching._fisher",
    "zdx_batching._flat",
    "zdx_batching._cache",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_the_readme_example_runs():
    readme = pathlib.Path(__file__).parents[2] / "packages" / "zdx-batching" / "README.md"
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(), re.S)
    assert blocks
    namespace: dict = {}
    exec(compile(blocks[0], str(readme), "exec"), namespace)
    np.testing.assert_allclose(np.asarray(namespace["H"]), np.asarray(namespace["F"]), rtol=1e-12)
