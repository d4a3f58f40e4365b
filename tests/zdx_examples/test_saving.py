"""An optics fit leaves its parameters, data and draws behind, and they load back: the
reduced chi-squared recomputed from the files is the fit's."""

import json
import warnings

import equinox as eqx
import jax.numpy as jnp
import numpy as onp
import pytest
from jax.flatten_util import ravel_pytree

import zdx_base
from zdx_examples import _cli, report
from zdx_examples import optics as ex
from zdx_examples._saving import load_fit, save_fit

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # arviz announces its refactor
    import arviz

FILTERS = {"blue": jnp.linspace(1.0, 1.2, 2), "red": jnp.linspace(1.4, 1.6, 2)}


def small_simulation():
    return ex.simulate(ex.build_optics(FILTERS, npix=16, psf_npixels=8, n_zernike=3), n_images=50)


@pytest.fixture(scope="module")
def result():
    """A hand-made fit: the truth moved by a known offset, and three NUTS draws."""
    sim = small_simulation()
    truth, unravel = ravel_pytree(sim.true_params)
    sigma = jnp.linspace(0.001, 0.01, truth.size)
    best = truth + sigma
    names = zdx_base.scalar_names(sim.true_params)
    samples = ex.PosteriorSamples(
        draws=jnp.stack([best - sigma, best, best + sigma])[None],
        names=names,
        r_hat=jnp.ones(truth.size),
        ess_bulk=jnp.full(truth.size, 3.0),
        divergences=0,
        backend="numpyro",
    )
    covariance = jnp.diag(sigma**2)
    return ex.OpticsFit(
        simulation=sim,
        start=unravel(truth),
        ngd_params=unravel(best),
        lbfgs_params=unravel(best),
        params=unravel(best),
        best_method="lbfgs",
        loss_curvature=jnp.linalg.inv(covariance),
        hessian=jnp.linalg.inv(covariance),
        covariance=covariance,
        names=names,
        ngd_losses=jnp.array([2.0]),
        ngd_history=jnp.stack([truth, best]),
        lbfgs_losses=jnp.array([2.0, 1.0]),
        samples=samples,
        stages={"lbfgs": {"steps": 2, "seconds": 0.1, "chi2r": 1.0}},
    )


def test_saved_fit_loads_back_and_gives_the_same_chi2r(result, tmp_path):
    paths = save_fit(result, tmp_path)
    assert [p.name for p in paths] == ["fit_params.eqx", "simulation.eqx", "posterior_draws.nc"]
    params, sim = load_fit(tmp_path, like=small_simulation())
    assert ravel_pytree(params)[0].tolist() == result.best.tolist()
    assert eqx.tree_equal(sim, result.simulation)
    # the same compiled function as OpticsFit.chi2r, on what was loaded
    chi2r = float(eqx.filter_jit(ex.get_reduced_chi2)(params, sim.optics, sim.observations))
    assert chi2r == result.chi2r()
    info = zdx_base.saved_info(tmp_path / "fit_params.eqx")
    assert info.names == result.names and info.metadata["chi2r"] == chi2r
    draws = arviz.from_netcdf(tmp_path / "posterior_draws.nc").posterior["params"]
    assert onp.array_equal(draws.values, onp.asarray(result.samples.draws))
    assert list(draws["parameter"].values) == list(result.names)


def test_data_of_other_settings_are_refused(result, tmp_path):
    save_fit(result, tmp_path)
    other = ex.simulate(ex.build_optics(FILTERS, npix=16, psf_npixels=10, n_zernike=3), n_images=50)
    with pytest.raises(ValueError, match="first leaf that differs"):
        load_fit(tmp_path, like=other)


def test_the_report_names_the_saved_files(result, tmp_path):
    report.write_report(result, tmp_path, corner_params=3)
    text = (tmp_path / "report.md").read_text()
    assert "## Saved files" in text
    for name in ("fit_params.eqx", "simulation.eqx", "posterior_draws.nc"):
        assert f"`{name}`" in text
    assert "posterior_draws.nc" in json.loads((tmp_path / "summary.json").read_text())["files"]


@pytest.mark.slow
def test_optics_fit_command_leaves_files_that_reproduce_its_chi2r(tmp_path):
    argv = [
        "optics-fit", "--npix", "64", "--n-images", "300", "--ngd-steps", "20",
        "--nuts-warmup", "30", "--nuts-samples", "20", "--quiet", "--out", str(tmp_path),
    ]  # fmt: skip
    assert _cli.main(argv) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    settings = summary["settings"]
    like = ex.simulate(
        ex.build_optics(
            filters=ex.filter_set(settings["filters"]),
            npix=settings["npix"],
            psf_npixels=settings["psf_npix"],
            n_zernike=settings["n_zernike"],
        ),
        n_images=settings["n_images"],
    )
    params, sim = load_fit(tmp_path, like=like)
    chi2r = float(eqx.filter_jit(ex.get_reduced_chi2)(params, sim.optics, sim.observations))
    assert chi2r == pytest.approx(summary["final_chi2r"], rel=1e-12)
    draws = arviz.from_netcdf(tmp_path / "posterior_draws.nc").posterior["params"]
    assert draws.shape == (1, 20, len(summary["parameters"]))
