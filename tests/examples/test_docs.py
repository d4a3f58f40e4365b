"""The examples in the docstrings of every zdx_examples module run and give what they show."""

import doctest
import importlib
import pkgutil

import pytest

import zdx_examples

MODULES = sorted(
    f"zdx_examples.{info.name}"
    for info in pkgutil.iter_modules(zdx_examples.__path__)
    if info.name != "__main__"
)


def test_every_public_module_is_among_them():
    for name in ("optics", "plots", "report", "gaussians", "_cli", "_start", "_telescope"):
        assert f"zdx_examples.{name}" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0
