"""The examples in the docstrings of zdx_examples run and give what they show."""

import doctest
import importlib

import pytest

MODULES = [
    "zdx_examples._telescope",
    "zdx_examples._observation",
    "zdx_examples._gaussians",
    "zdx_examples.gaussians",
    "zdx_examples.optics",
    "zdx_examples._plots",
    "zdx_examples._plot_covariance",
    "zdx_examples._plot_images",
    "zdx_examples._stage_recorder",
    "zdx_examples.plots",
    "zdx_examples.report",
    "zdx_examples._cli",
    "zdx_examples._start",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
