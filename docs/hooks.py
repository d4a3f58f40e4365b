"""MkDocs hooks of the zodiax site: one page per folder of benchmarks/results/, built from
the report and the plots that ``hatch run bench:report`` wrote there, so the site shows
every committed result without a copy that could drift."""

from __future__ import annotations

import pathlib

from mkdocs.structure.files import File

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
NAV_TITLE = "Benchmarks"


def result_folders() -> list[pathlib.Path]:
    """The folders of benchmarks/results/ that hold a report (``report_*.md``)."""
    return sorted(p for p in RESULTS.iterdir() if p.is_dir() and any(p.glob("report_*.md")))


def on_config(config):
    """Put a page per results folder under the Benchmarks entry of the navigation."""
    for i, entry in enumerate(config["nav"]):
        if isinstance(entry, dict) and NAV_TITLE in entry:
            pages = [{"Overview": entry[NAV_TITLE]}]
            pages += [{p.name: f"benchmarks/{p.name}/index.md"} for p in result_folders()]
            config["nav"][i] = {NAV_TITLE: pages}
    return config


def on_files(files, config):
    """Add ``benchmarks/<folder>/index.md`` (its reports) and the folder's plots."""
    for folder in result_folders():
        reports = "\n\n".join(p.read_text() for p in sorted(folder.glob("report_*.md")))
        text = (
            f"# Benchmarks: {folder.name}\n\n"
            f"The reports of `benchmarks/results/{folder.name}/`, as `hatch run bench:report` "
            "wrote them.\n\n" + reports
        )
        files.append(File.generated(config, f"benchmarks/{folder.name}/index.md", content=text))
        for image in sorted(folder.glob("*.png")):
            uri = f"benchmarks/{folder.name}/{image.name}"
            files.append(File.generated(config, uri, abs_src_path=str(image)))
    return files
