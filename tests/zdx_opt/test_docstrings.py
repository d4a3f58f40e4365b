"""The `>>>` examples in the docstrings of zdx_opt run and give what they show."""

import doctest
import importlib

import pytest

MODULES = [
    "_eigen",
    "_mapping",
    "_minimise",
    "_nan",
    "_natural",
    "_paths",
    "_reparam",
    "_schedules",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"zdx_opt.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
