"""The tutorial script (examples/tutorials, jupytext percent format) runs and gets the
tutorial's numbers: exactly for the sum of Gaussians, within the noise for the optics."""

import pathlib
import runpy

import pytest

TUTORIAL = (
    pathlib.Path(__file__).resolve().parents[2]
    / "examples"
    / "tutorials"
    / "optimisation_tutorial.py"
)


def test_tutorial_is_a_jupytext_percent_script():
    text = TUTORIAL.read_text()
    assert text.startswith("# ---\n# jupyter:\n#   jupytext:\n")
    assert "format_name: percent" in text
    cells = text.count("\n# %%")
    markdown = text.count("\n# %% [markdown]")
    assert cells - markdown >= 8 and markdown >= 8
    for section in ("## 1.", "## 2.", "## 3.", "## 4.", "## 5.", "## 6.", "## 7."):
        assert f"# {section}" in text


@pytest.mark.slow
def test_tutorial_runs_and_reproduces_the_tutorials_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv("ZDX_TUTORIAL_QUICK", "1")
    monkeypatch.setenv("ZDX_TUTORIAL_FIGURES", str(tmp_path))
    ns = runpy.run_path(str(TUTORIAL), run_name="__main__")
    # Sections 1 to 3: the tutorial prints 1.0707949059930015 after 500 SGD steps, then
    # 1.0282461240223641 after 27 BFGS steps, and sigma(mean) = 0.008462, 0.080757.
    assert ns["gd_chi2r"] == pytest.approx(1.0707949059930015, rel=1e-9)
    assert ns["bfgs_chi2r"] == pytest.approx(1.0282461240223641, rel=1e-9)
    assert ns["bfgs_steps"] == 27
    assert [float(s) for s in ns["gauss_sigma"]["mean"]] == pytest.approx(
        [0.008462, 0.080757], abs=1e-6
    )
    # Sections 4 to 7 at the quick sizes: 3 x 32 x 32 pixels, 16 parameters.
    assert 0.9 <= ns["final_chi2r"] <= 1.1
    assert ns["final_chi2r"] == pytest.approx(min(ns["ngd_chi2r"], ns["lbfgs_chi2r"]), rel=1e-9)
    assert ns["max_abs_pull"] < 5
    assert ns["samples"].draws.shape == (1, 100, 16)
    assert float(ns["samples"].r_hat.max()) < 1.2
    saved = sorted(p.name for p in tmp_path.glob("*.png"))
    assert saved == sorted(
        f"{name}.png"
        for name in ("gaussians", "optics_data", "ngd_loss", "residuals", "matrices", "corner")
    )
