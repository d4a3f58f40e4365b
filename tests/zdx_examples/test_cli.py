"""The ``zdx-examples`` command runs the tutorial's fits end to end and writes a report."""

import json
import subprocess
import sys

import matplotlib.image
import pytest

from zdx_examples import _cli
from zdx_examples.report import FIGURES

STAGES = [
    "simulate",
    "start",
    "choose_start",
    "fisher",
    "natural_gradient",
    "lbfgs",
    "hessian",
    "nuts",
]


def test_gaussians_fit_reproduces_the_tutorials_numbers(tmp_path, capsys):
    out = tmp_path / "gaussians.json"
    folder = tmp_path / "report"
    assert _cli.main(["gaussians-fit", "--json", str(out), "--out", str(folder)]) == 0
    summary = json.loads(out.read_text())
    # The tutorial prints 7.5259..., 1.0282... after 27 steps, sigma(mean) 0.008462, 0.080757.
    assert summary["initial_chi2r"] == pytest.approx(7.525943757570605, rel=1e-9)
    assert summary["final_chi2r"] == pytest.approx(1.0282461240223641, rel=1e-9)
    assert summary["steps"] == 27
    assert summary["sigma"]["mean"] == pytest.approx([0.008462, 0.080757], abs=1e-6)
    assert "final_chi2r 1.028" in capsys.readouterr().out
    assert json.loads((folder / "summary.json").read_text()) == summary
    assert matplotlib.image.imread(folder / "gaussians.png").ndim == 3


@pytest.fixture(scope="module")
def optics_report(tmp_path_factory):
    """One small end-to-end run of ``optics-fit`` (64 pupil pixels, 300 exposures, a short
    natural gradient and a 100 + 100 NUTS chain), shared by the tests below."""
    folder = tmp_path_factory.mktemp("optics-report")
    argv = [
        "optics-fit",
        "--npix", "64",
        "--n-images", "300",
        "--ngd-steps", "30",
        "--nuts-warmup", "100",
        "--nuts-samples", "100",
        "--out", str(folder),
        "--json", str(folder / "printed.json"),
    ]  # fmt: skip
    assert _cli.main(argv) == 0
    return folder


@pytest.mark.slow
def test_optics_fit_reaches_the_noise_and_recovers_the_truth(optics_report):
    summary = json.loads((optics_report / "summary.json").read_text())
    assert summary == json.loads((optics_report / "printed.json").read_text())
    assert summary["initial_chi2r"] > 1e4
    assert 0.9 <= summary["final_chi2r"] <= 1.1
    # A maximum likelihood fit cannot be worse than the truth on its own data.
    assert summary["final_chi2r"] <= summary["truth_chi2r"] + 1e-9
    params = summary["parameters"]
    assert len(params) == 16
    pulls = [abs(p["fit"] - p["truth"]) / p["sigma"] for p in params]
    assert summary["max_abs_pull"] == pytest.approx(max(pulls), rel=1e-12)
    assert summary["max_abs_pull"] < 5
    assert {p["name"] for p in params} >= {"flux.blue", "position.red[1]", "wfe[6]"}


@pytest.mark.slow
def test_optics_fit_reports_steps_and_seconds_per_stage(optics_report):
    summary = json.loads((optics_report / "summary.json").read_text())
    assert list(summary["stages"]) == STAGES
    assert summary["steps"]["simulate"] == 300
    assert summary["steps"]["natural_gradient"] == 30
    assert summary["steps"]["nuts"] == 200
    assert 1 <= summary["steps"]["lbfgs"] <= 256
    for stage in STAGES:
        record = summary["stages"][stage]
        assert record["steps"] == summary["steps"][stage] >= 1
        assert record["seconds"] == summary["seconds"][stage] >= 0
    assert summary["total_seconds"] == pytest.approx(sum(summary["seconds"].values()), abs=1e-2)
    nuts = summary["nuts"]
    assert nuts["chains"] == 1 and nuts["draws_per_chain"] == 100
    assert nuts["backend"] in ("zdx_sample", "numpyro")
    assert nuts["max_r_hat"] < 1.2
    assert summary["best_method"] in ("natural_gradient", "lbfgs")
    # each method reported on its own, and the sign search's choice explained
    assert set(summary["method_chi2r"]) == {"natural_gradient", "lbfgs"}
    assert summary["steps"]["choose_start"] == 8  # sign patterns of the 3 even terms
    assert "sign pattern" in summary["start_choice"]


@pytest.mark.slow
def test_optics_fit_writes_figures_and_a_report(optics_report):
    pngs = sorted(p.name for p in optics_report.glob("*.png"))
    assert pngs == sorted(FIGURES) and len(pngs) >= 5
    for name in pngs:
        image = matplotlib.image.imread(optics_report / name)
        assert image.ndim == 3 and min(image.shape[:2]) > 300, name
    report = (optics_report / "report.md").read_text()
    summary = json.loads((optics_report / "summary.json").read_text())
    for name in pngs:
        assert f"]({name})" in report
    assert "| parameter | truth | fit ± σ | pull |" in report
    for row in summary["parameters"]:
        assert f"| `{row['name']}` |" in report
    assert f"{summary['final_chi2r']:.5g}" in report
    saved = ["fit_params.eqx", "simulation.eqx", "posterior_draws.nc"]
    assert summary["files"] == [*FIGURES, *saved, "summary.json", "report.md"]


@pytest.mark.parametrize(
    "argv, error",
    [
        (["optics-fit", "--npix", "0"], "--npix: must be a"),
        (["optics-fit", "--nuts-samples", "2"], "must be 0 or >= 4, got 2"),
        (["optics-fit", "--learning-rate", "-1"], "in (0, 10)"),
        (["optics-fit", "--filters", "two"], "must be an integer, got 'two'"),
        ([], "the following arguments are required"),
    ],
)
def test_bad_command_line_is_refused(capsys, argv, error):
    with pytest.raises(SystemExit):
        _cli.main(argv)
    assert error in capsys.readouterr().err


def test_out_must_be_a_folder(tmp_path):
    file = tmp_path / "a-file"
    file.write_text("")
    with pytest.raises(NotADirectoryError, match="a-file"):
        _cli.optics_fit(out=file)


def test_unknown_settings_are_named():
    with pytest.raises(TypeError, match=r"unknown settings \['npixels'\]"):
        _cli.optics_fit(npixels=64)


def test_module_runs_as_the_command():
    result = subprocess.run(
        [sys.executable, "-m", "zdx_examples", "optics-fit", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for option in ("--out", "--npix", "--n-zernike", "--filters", "--n-images", "--nuts-samples"):
        assert option in result.stdout
