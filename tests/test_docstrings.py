"""The ``>>>`` examples in every package's docstrings run and print what they say."""

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ["zdx_base", "zdx_stats", "zdx_batching", "zdx_opt", "zdx_sample", "zodiax"]


def modules():
    for name in PACKAGES:
        try:
            package = importlib.import_module(name)
        except ImportError:  # a package environment that installs one package alone
            continue
        yield package.__name__
        for info in pkgutil.iter_modules(package.__path__, name + "."):
            yield info.name


@pytest.mark.parametrize("module_name", sorted(set(modules())))
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {module_name}"
