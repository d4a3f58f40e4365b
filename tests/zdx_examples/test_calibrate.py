"""The calibration commands at tiny sizes: they run end to end, and their statistics are
those of zdx_stats applied to the fits they report."""

import json

import jax.numpy as jnp
import numpy as onp
import pytest

import zdx_stats
from zdx_examples import _cli
from zdx_examples._calibrate_optics import simulate_averaged
from zdx_examples._simulate import true_parameters
from zdx_examples._telescope import build_optics


def test_averaged_data_has_the_mean_and_spread_of_averaged_exposures():
    optics = build_optics({"blue": jnp.linspace(1.0, 1.2, 2)}, npix=16, psf_npixels=6)
    truth = {**true_parameters(optics, 0), "flux": {"blue": jnp.array(7.0)}}
    # 1000 exposures: mean counts up to ~1e8, where jax.random.poisson's variance is 1.46
    # times too large; the normal law used there keeps the spread right.
    [obs] = simulate_averaged(optics, truth, onp.arange(400), n_images=1000, read_noise=10.0)
    psf = obs.__class__(0.0, 0.0, "blue")(truth, optics)
    z = (obs.data - psf) / obs.error
    assert obs.data.shape == (400, 6, 6)
    assert float(jnp.max(psf)) * 1000 > 5e7
    onp.testing.assert_allclose(obs.error[0], jnp.sqrt((psf + 100.0) / 1000))
    # z-scores of 400 x 36 pixels: mean 0 and std 1 within a few standard errors
    assert abs(float(z.mean())) < 4 / 120
    assert abs(float(z.std()) - 1) < 4 / 170


@pytest.mark.slow
def test_calibrate_optics_command_writes_a_consistent_report(tmp_path, capsys):
    out = tmp_path / "optics"
    argv = ["calibrate", "optics", "--n", "4", "--npix", "16", "--psf-npix", "8"]
    argv += ["--ngd-steps", "20", "--block-size", "3", "--quiet", "--out", str(out)]
    assert _cli.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    for name in ("pulls.png", "coverage.png", "report.md"):
        assert (out / name).stat().st_size > 0
    assert "## Targets" in (out / "report.md").read_text()
    assert len(summary["chi2r"]) == 4
    used = [i for i in range(4) if i not in summary["not_converged"]]
    fits, sigmas = onp.array(summary["fits"]), onp.array(summary["sigmas"])
    pulls = zdx_stats.pulls(fits[used], onp.array(summary["truth"]), sigmas[used])
    onp.testing.assert_allclose(summary["pulls"], pulls, rtol=1e-12)
    cover = zdx_stats.coverage(pulls)
    onp.testing.assert_allclose(summary["coverage"]["overall"], cover.overall)
    assert "coverage_1sigma" in capsys.readouterr().out


@pytest.mark.slow
def test_calibrate_gaussians_command_records_ranks(tmp_path):
    out = tmp_path / "sbc"
    argv = ["calibrate", "gaussians", "--n", "2", "--draws", "9", "--nuts-warmup", "50"]
    argv += ["--num-live", "50", "--samplers", "nuts,mams,nested_sampling"]
    argv += ["--quiet", "--out", str(out)]
    assert _cli.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    for sampler in ("nuts", "mams", "nested_sampling"):
        ranks = onp.array(summary[sampler]["ranks"])
        assert ranks.shape == (2, 6)
        assert ranks.min() >= 0 and ranks.max() <= 9
        # two replications are too few for the chi-squared test, and the report says so
        assert summary[sampler]["test"] is None
    assert "no uniformity test" in (out / "report.md").read_text()


def test_the_chance_of_a_calibrated_width_outside_the_band_is_the_normal_tail():
    from zdx_examples._calibration_report import _chance_outside

    # a standard error of 0.05 puts the band's edges at 2 standard errors
    assert _chance_outside(0.05) == pytest.approx(0.0455, abs=1e-4)
    rng = onp.random.default_rng(0)
    widths = rng.standard_normal((4000, 200)).std(axis=1, ddof=1)
    observed = onp.mean((widths < 0.9) | (widths > 1.1))
    assert observed == pytest.approx(_chance_outside(1 / onp.sqrt(2 * 199)), abs=0.012)


def test_the_calibrations_refuse_a_setting_they_do_not_know():
    from zdx_examples._calibrate_gaussians import sbc_gaussians
    from zdx_examples._calibrate_optics import calibrate_optics

    with pytest.raises(TypeError, match=r"sbc_gaussians: unknown settings \['nn'\]"):
        sbc_gaussians(progress=False, nn=3)
    with pytest.raises(TypeError, match=r"calibrate_optics: unknown settings \['nn'\]"):
        calibrate_optics(progress=False, nn=3)
