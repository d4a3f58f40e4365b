"""The report of an optics fit: summary.json, report.md and the figures, from known values."""

import json
import math

import jax.numpy as jnp
import matplotlib.image
import numpy as onp
import pytest
from jax.flatten_util import ravel_pytree

import zdx_base
from zdx_examples import optics as ex
from zdx_examples import plots, report

FILTERS = {"blue": jnp.linspace(1.0, 1.2, 2), "red": jnp.linspace(1.4, 1.6, 2)}
SIGMA = onp.array([0.01, 0.02, 0.001, 0.002, 0.003, 0.004, 1.0, 2.0, 3.0])
PULLS = onp.array([0.5, -1.0, 2.0, 0.0, -0.25, 1.5, -3.0, 0.1, 0.2])


@pytest.fixture(scope="module")
def result():
    """A hand-made OpticsFit: the best fit sits PULLS sigmas from the truth, with a known
    covariance (one correlation), three NUTS draws per parameter and a NaN figure."""
    optics = ex.build_optics(FILTERS, npix=16, psf_npixels=8, n_zernike=3)
    sim = ex.simulate(optics, n_images=50)
    truth, unravel = ravel_pytree(sim.true_params)
    best = truth + PULLS * SIGMA
    correlation = onp.eye(9)
    correlation[6, 7] = correlation[7, 6] = 0.5
    covariance = correlation * onp.outer(SIGMA, SIGMA)
    draws = jnp.stack([best - SIGMA, best, best + SIGMA])[None]
    samples = ex.PosteriorSamples(
        draws=draws,
        names=zdx_base.scalar_names(sim.true_params),
        r_hat=jnp.full(9, 1.01),
        ess_bulk=jnp.full(9, 3.0),
        divergences=0,
        backend="numpyro",
    )
    start = unravel(truth + 10 * SIGMA)
    history = jnp.stack([truth + 10 * SIGMA, best])
    return ex.OpticsFit(
        simulation=sim,
        start=start,
        ngd_params=unravel(best),
        lbfgs_params=unravel(best),
        params=unravel(best),
        best_method="lbfgs",
        loss_curvature=jnp.asarray(onp.linalg.inv(covariance)),
        hessian=jnp.asarray(onp.linalg.inv(covariance)),
        covariance=jnp.asarray(covariance),
        names=zdx_base.scalar_names(sim.true_params),
        ngd_losses=jnp.array([10.0]),
        ngd_history=history,
        lbfgs_losses=jnp.array([10.0, 5.0, 1.0]),
        samples=samples,
        stages={
            "start": {"steps": 1, "seconds": 0.25, "chi2r": 123.0},
            "lbfgs": {"steps": 7, "seconds": 1.5, "chi2r": float("nan"), "result": "successful"},
        },
    )


@pytest.fixture(scope="module")
def written(result, tmp_path_factory):
    folder = tmp_path_factory.mktemp("report") / "nested" / "out"
    paths = report.write_report(result, folder, settings={"npix": 16}, corner_params=4)
    return folder, paths


def test_pulls_and_sigma_come_from_the_covariance(result):
    onp.testing.assert_allclose(result.sigma, SIGMA, rtol=1e-12)
    onp.testing.assert_allclose(result.pulls, PULLS, rtol=1e-9, atol=1e-9)
    assert result.max_abs_pull == pytest.approx(3.0, rel=1e-9)


def test_summary_has_the_figures_of_the_fit(result):
    summary = report.summarise(result, {"seed": 0})
    assert summary["max_abs_pull"] == pytest.approx(3.0, rel=1e-9)
    sim = result.simulation
    chi2r = float(ex.get_reduced_chi2(result.params, sim.optics, sim.observations))
    assert summary["final_chi2r"] == pytest.approx(chi2r, rel=1e-12)
    assert summary["initial_chi2r"] == pytest.approx(
        float(ex.get_reduced_chi2(result.start, sim.optics, sim.observations)), rel=1e-12
    )
    assert summary["steps"] == {"start": 1, "lbfgs": 7}
    assert summary["seconds"] == {"start": 0.25, "lbfgs": 1.5}
    assert summary["total_seconds"] == 1.75
    assert summary["best_method"] == "lbfgs"
    assert summary["settings"] == {"seed": 0}
    rows = summary["parameters"]
    assert [row["name"] for row in rows] == list(result.names)
    for row, pull, sigma in zip(rows, PULLS, SIGMA):
        assert row["pull"] == pytest.approx(pull, rel=1e-9, abs=1e-9)
        assert row["sigma"] == pytest.approx(sigma, rel=1e-12)
        assert row["nuts_mean"] == pytest.approx(row["fit"], rel=1e-12)
        assert row["nuts_sigma"] == pytest.approx(sigma * math.sqrt(2 / 3), rel=1e-9)
    assert summary["nuts"]["backend"] == "numpyro"
    assert summary["nuts"]["draws_per_chain"] == 3


def test_summary_json_is_strict_json_with_null_for_nan(written):
    folder, _ = written

    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    summary = json.loads((folder / "summary.json").read_text(), parse_constant=refuse)
    assert summary["stages"]["lbfgs"]["chi2r"] is None
    assert summary["stages"]["start"]["chi2r"] == 123.0


def test_write_report_writes_every_figure_the_summary_and_the_report(written):
    folder, paths = written
    names = [p.name for p in paths]
    saved = ["fit_params.eqx", "simulation.eqx", "posterior_draws.nc"]
    assert names == [*report.FIGURES, *saved, "summary.json", "report.md"]
    assert all(p.parent == folder and p.stat().st_size > 0 for p in paths)
    for name in report.FIGURES:
        assert matplotlib.image.imread(folder / name).ndim == 3


def test_report_shows_the_figures_and_the_table(written, result):
    folder, _ = written
    text = (folder / "report.md").read_text()
    assert text.startswith("# Hierarchical optics fit")
    assert "`npix=16`" in text
    for name in report.FIGURES:
        assert f"]({name})" in text
    assert "| parameter | truth | fit ± σ | pull | NUTS mean ± sd |" in text
    truth = onp.asarray(ravel_pytree(result.simulation.true_params)[0])
    fit = onp.asarray(result.best)
    for i, name in enumerate(result.names):
        row = f"| `{name}` | {truth[i]:.8g} | {fit[i]:.8g} ± {SIGMA[i]:.3g} | {PULLS[i]:.3g} |"
        assert row.replace(" -0 |", " 0 |") in text.replace(" -0 |", " 0 |")
    assert "| lbfgs | 7 | 1.50 |  |" in text  # NaN shows as an empty cell


def test_markdown_leaves_out_nuts_columns_without_samples(result):
    summary = report.summarise(result.__class__(**{**vars(result), "samples": None}))
    text = report.markdown(summary)
    assert "| parameter | truth | fit ± σ | pull |\n" in text
    assert "NUTS mean" not in text and "NUTS (" not in text
    assert summary["nuts"] is None


def test_write_report_refuses_a_file_as_folder(result, tmp_path):
    file = tmp_path / "summary"
    file.write_text("")
    with pytest.raises(NotADirectoryError, match="is a file"):
        report.write_report(result, file)


def test_make_figures_chooses_the_correlated_pair_for_the_corner_plot(result):
    assert plots.key_parameters(result.covariance, 2) == [6, 7]
    figures = report.make_figures(result, corner_params=2)
    assert set(figures) == set(report.FIGURES)
    corner = figures["corner.png"]
    labels = [ax.get_xlabel() for ax in corner.axes if ax.get_xlabel()]
    assert labels == [result.names[6], result.names[7]]
