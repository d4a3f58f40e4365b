"""The ``zdx-examples`` command runs the tutorial's fits end to end."""

import json

import pytest

from zdx_examples import _cli


def test_gaussians_fit_reproduces_the_tutorials_numbers(tmp_path, capsys):
    out = tmp_path / "gaussians.json"
    assert _cli.main(["gaussians-fit", "--json", str(out)]) == 0
    summary = json.loads(out.read_text())
    # The tutorial prints 7.5259..., 1.0282... after 27 steps, sigma(mean) 0.008462, 0.080757.
    assert summary["initial_chi2r"] == pytest.approx(7.525943757570605, rel=1e-9)
    assert summary["final_chi2r"] == pytest.approx(1.0282461240223641, rel=1e-9)
    assert summary["steps"] == 27
    assert summary["sigma"]["mean"] == pytest.approx([0.008462, 0.080757], abs=1e-6)
    assert "final_chi2r 1.028" in capsys.readouterr().out


@pytest.mark.slow
def test_optics_fit_recovers_the_truth(tmp_path):
    out = tmp_path / "optics.json"
    argv = ["optics-fit", "--npix", "64", "--n-images", "300", "--json", str(out)]
    assert _cli.main(argv) == 0
    summary = json.loads(out.read_text())
    assert summary["initial_chi2r"] > 1e4
    n_data = 3 * 32 * 32
    assert abs(summary["final_chi2r"] - 1) < 4 * (2 / n_data) ** 0.5
    assert summary["final_chi2r"] <= summary["truth_chi2r"] + 1e-9
    assert summary["max_abs_pull"] < 5
    assert len(summary["names"]) == len(summary["fit"]) == 16


def test_bad_command_line_is_refused(capsys):
    with pytest.raises(SystemExit):
        _cli.main(["optics-fit", "--npix", "0"])
    assert "positive integer" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _cli.main([])
