"""The seed tutorial, run as written against this project, reaches the tutorial's results.

``seed_tutorial.py`` beside this file is the user's tutorial as a script, kept byte for byte
(checked against ``shared/seed`` when that folder sits beside the repository). It imports
``build_optics`` from ``zdx_examples.optics`` and prints ``FIGURE name value`` lines.
"""

import ast
import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
SCRIPT = HERE / "seed_tutorial.py"
SHARED = HERE.parents[2] / "shared" / "seed" / "seed_tutorial.py"


def test_the_script_is_the_seed_tutorial_unchanged():
    if not SHARED.exists():
        pytest.skip(f"{SHARED} is not beside this checkout")
    assert SCRIPT.read_bytes() == SHARED.read_bytes()


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("tutorial")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--nuts-warmup", "200", "--nuts-samples", "300"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    out = {}
    for line in result.stdout.splitlines():
        if line.startswith("FIGURE "):
            _, name, value = line.split(" ", 2)
            out[name] = ast.literal_eval(value)
    return out


@pytest.mark.slow
def test_bfgs_fits_the_gaussians(figures):
    assert figures["s2_final_chi2r"] < 1.2
    assert figures["s2_steps"] <= 40


@pytest.mark.slow
def test_natural_gradient_descent_reaches_chi2r_one(figures):
    assert 0.9 <= figures["s5_ngd_final_chi2r"] <= 1.1


@pytest.mark.slow
def test_reparametrised_lbfgs_reaches_chi2r_one_quickly(figures):
    assert 0.9 <= figures["s6_reparam_chi2r"] <= 1.1
    assert figures["s6_reparam_steps"] <= 64


@pytest.mark.slow
def test_truth_within_four_sigma_of_the_hessian_error_bars(figures):
    assert figures["s7_max_abs_pull_vs_truth"] < 4


@pytest.mark.slow
def test_nuts_converges(figures):
    assert figures["s7_nuts_max_rhat"] < 1.02
