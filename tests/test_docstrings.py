"""The ``>>>`` examples in the docstrings of every module of every package run and print
what they say. This is the family's one doctest harness: each package's own environment
runs it too, and then checks only the packages installed there.
"""

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ["zdx_base", "zdx_stats", "zdx_batching", "zdx_opt", "zdx_sample", "zodiax"]
PACKAGES += ["zdx_examples"]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def installed_packages():
    for name in PACKAGES:
        try:
            yield importlib.import_module(name)
        except ImportError:  # a package's own environment installs that package alone
            continue


def modules():
    for package in installed_packages():
        yield package.__name__
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            if not info.name.endswith(".__main__"):
                yield info.name


MODULES = sorted(set(modules()))


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=FLAGS)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {module_name}"


# zodiax only re-exports the family under zodiax 0.5's names: its examples are the others'.
WITH_EXAMPLES = [p for p in installed_packages() if p.__name__ != "zodiax"]


@pytest.mark.parametrize("package", WITH_EXAMPLES, ids=lambda p: p.__name__)
def test_every_installed_package_has_examples(package):
    attempted = 0
    for name in MODULES:
        if name == package.__name__ or name.startswith(package.__name__ + "."):
            finder = doctest.DocTestFinder()
            attempted += sum(len(t.examples) for t in finder.find(importlib.import_module(name)))
    assert attempted > 0, f"{package.__name__} has no docstring examples"
