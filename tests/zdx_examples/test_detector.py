"""The detector-calibration example: its model, its structured Fisher matrix, its fit."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import zdx_batching as zb
from zdx_examples._calibrate_detector import calibrate_detector
from zdx_examples._detector import detector_problem

SMALL = {"pupil_npix": 32, "ndither": 2, "nwavels": 1}


@pytest.fixture(scope="module")
def problem():
    return detector_problem(8, **SMALL)


def test_parameters_and_data_shapes(problem):
    assert problem.data.shape == (4, 8, 8)
    assert problem.settings["nparams"] == 8 * 8 + 22
    assert bool(jnp.all(problem.sigma > 0))


def test_every_pixel_response_changes_the_model(problem):
    # Each log response scales its own pixel in every image, and nothing else: the
    # derivative of the total counts by log_response[i] is the counts of pixel i.
    gradient = jax.grad(lambda r: jnp.sum(problem.model({**problem.truth, "log_response": r})))(
        problem.truth["log_response"]
    )
    expected = jnp.sum(problem.model(problem.truth), axis=0)
    np.testing.assert_allclose(gradient, expected, rtol=1e-10)


def test_sparse_fisher_equals_the_dense_one(problem):
    sparse = zb.sparse_fisher(
        problem.scaled_model, problem.truth, declare={"log_response": "elementwise"}
    )
    flat, unravel = ravel_pytree(problem.truth)
    J = jax.jacfwd(lambda v: jnp.ravel(problem.scaled_model(unravel(v))))(flat)
    dense = np.asarray(J.T @ J)
    difference = np.max(np.abs(np.asarray(sparse.todense()) - dense)) / np.max(np.abs(dense))
    assert difference < 1e-12
    found = zb.find_sparsity("fisher", problem.scaled_model, problem.truth)
    assert found.sources["log_response"] == "detected"
    assert found.ncolours == 23  # 22 global scalars and one colour for every response pixel


@pytest.mark.slow
def test_calibrate_detector_converges_and_reports(tmp_path):
    summary = calibrate_detector(npix=8, out=tmp_path, progress=False, **SMALL)
    assert summary["converged"]
    assert summary["steps_to_delta_chi2_below_1"] is not None
    assert summary["steps_to_delta_chi2_below_1"] <= 30
    assert abs(summary["chi2"] - summary["reference_chi2"]) < 1.0
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["chi2"] == pytest.approx(summary["chi2"])
    for name in ("response.png", "errors.png", "pulls.png", "convergence.png", "report.md"):
        assert (tmp_path / name).stat().st_size > 0


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="npix"):
        detector_problem(2)


def test_a_flat_illumination_reaches_every_pixel_through_its_response(problem):
    lit = detector_problem(8, flat=500.0, **SMALL)
    difference = lit.model(problem.truth) - problem.model(problem.truth)
    expected = 500.0 * jnp.exp(problem.truth["log_response"])
    np.testing.assert_allclose(difference, jnp.broadcast_to(expected, difference.shape), rtol=1e-9)
    with pytest.raises(ValueError, match="flat"):
        detector_problem(8, flat=-1.0, **SMALL)
