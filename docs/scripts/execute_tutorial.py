"""Execute the tutorial script at its quick sizes and write the notebook the site shows.

    hatch run docs:tutorial

reads examples/tutorials/optimisation_tutorial.py (jupytext percent format), runs it in a
Jupyter kernel with ZDX_TUTORIAL_QUICK=1 (a few minutes on two cores) and writes
docs/tutorial/optimisation_tutorial.ipynb with the outputs and figures. The notebook
records the SHA-256 of the script it came from; tests/docs/test_tutorial_notebook.py fails
when the script has changed since, so run this again after editing the tutorial.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import sys
import tempfile
import time

import jupytext
import nbformat
from nbconvert.preprocessors import ExecutePreprocessor

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "tutorials" / "optimisation_tutorial.py"
NOTEBOOK = ROOT / "docs" / "tutorial" / "optimisation_tutorial.ipynb"
KERNEL_CONFIG = """
c.InteractiveShellApp.matplotlib = "inline"
c.InteractiveShellApp.exec_lines = [
    "import warnings; warnings.filterwarnings('ignore', message='IProgress not found')"
]
"""


def main() -> int:
    source = SCRIPT.read_bytes()
    notebook = jupytext.reads(source.decode(), fmt="py:percent")
    os.environ["ZDX_TUTORIAL_QUICK"] = "1"
    os.environ["TQDM_DISABLE"] = "1"  # progress bars would fill the page
    clock = time.perf_counter()
    with tempfile.TemporaryDirectory() as ipython_dir:
        # the kernel shows figures inline, and tqdm does not warn that widgets are missing
        profile = pathlib.Path(ipython_dir) / "profile_default"
        profile.mkdir()
        (profile / "ipython_kernel_config.py").write_text(KERNEL_CONFIG)
        os.environ["IPYTHONDIR"] = ipython_dir
        ExecutePreprocessor(timeout=1800, kernel_name="python3").preprocess(
            notebook, {"metadata": {"path": str(SCRIPT.parent)}}
        )
    notebook.metadata["zdx"] = {
        "source": str(SCRIPT.relative_to(ROOT)),
        "source_sha256": hashlib.sha256(source).hexdigest(),
        "environment": {"ZDX_TUTORIAL_QUICK": "1"},
    }
    NOTEBOOK.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, NOTEBOOK)
    seconds = time.perf_counter() - clock
    print(f"wrote {NOTEBOOK.relative_to(ROOT)} in {seconds:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
