"""Every Python block of the home page and the package guides runs, page by page, in one
namespace per page (as a reader would paste them in order)."""

import pathlib
import re

import pytest

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs"
PAGES = [DOCS / "index.md", *sorted((DOCS / "packages").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_every_package_has_a_guide_with_code():
    names = {p.stem for p in PAGES}
    packages = {"zdx-base", "zdx-stats", "zdx-batching", "zdx-opt", "zdx-sample", "zodiax"}
    assert packages | {"zdx-examples"} <= names
    for page in PAGES:
        assert BLOCK.search(page.read_text()), f"{page.name} has no Python example"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_guide_examples_run(page, capsys):
    namespace = {"__name__": f"guide_{page.stem}"}
    for i, code in enumerate(BLOCK.findall(page.read_text())):
        exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)
