"""Each package installs alone, from its folder, into a fresh virtual environment, imports
cleanly and passes its own tests there (all but the slow ones, which the whole suite runs):
what it needs is exactly what its pyproject declares, plus its siblings from their folders
(never from the registry)."""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = {  # distribution -> import name, which is also the name of its tests folder
    "zdx-base": "zdx_base",
    "zdx-stats": "zdx_stats",
    "zdx-batching": "zdx_batching",
    "zdx-opt": "zdx_opt",
    "zdx-sample": "zdx_sample",
}
SIBLINGS = ["zdx-base", "zdx-stats", "zdx-batching", "zdx-opt", "zdx-sample"]


def _uv():
    found = shutil.which("uv")
    if found:
        return [found]
    try:
        import uv

        return [uv.find_uv_bin()]
    except ImportError:
        pytest.fail("uv is needed to build fresh environments; hatch test's environment has it")


@pytest.mark.slow
@pytest.mark.parametrize("dist", sorted(PACKAGES))
def test_package_installs_alone_and_passes_its_tests(dist, tmp_path):
    import_name = PACKAGES[dist]
    uv = _uv()
    venv = tmp_path / "venv"
    subprocess.run([*uv, "venv", "-q", "-p", sys.executable, str(venv)], check=True)
    python = str(venv / "bin" / "python")
    # siblings resolve from their folders: the package's own requirements name them by range
    overrides = tmp_path / "siblings.txt"
    overrides.write_text("".join(f"{s} @ {(ROOT / 'packages' / s).as_uri()}\n" for s in SIBLINGS))
    install = [*uv, "pip", "install", "-q", "--python", python, "--override", str(overrides)]
    # the test requirements of the package's own hatch environment, `hatch run <dist>:test`
    hatch = tomllib.loads((ROOT / "hatch.toml").read_text())
    test_requirements = hatch["envs"][dist]["dependencies"]
    subprocess.run([*install, str(ROOT / "packages" / dist), *test_requirements], check=True)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHONPATH", "VIRTUAL_ENV"))}
    subprocess.run([python, "-c", f"import {import_name}"], check=True, env=env)
    result = subprocess.run(
        [
            python,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            # the package's slow end-to-end tests run in the whole suite (`hatch test`);
            # here what matters is that it installs and works alone
            "-m",
            "not slow",
            str(ROOT / "tests" / import_name),
            str(ROOT / "tests" / "test_docstrings.py"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
