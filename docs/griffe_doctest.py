"""A griffe extension for the API pages: doctest examples (``>>>`` lines and their output)
that stand in a docstring's text, outside an ``Examples`` section, are shown as code.

Without it a doctest's output such as ``[2.0, 3.0]`` would be read as Markdown (here, a
cross-reference to an object named ``2.0, 3.0``).
"""

from __future__ import annotations

from typing import Any

import griffe


def fence_doctests(text: str) -> str:
    """``text`` with every run of top-level ``>>>`` lines and their output in a fence."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    in_fence = False
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            in_fence = not in_fence
        if in_fence or not line.startswith(">>>"):
            out.append(line)
            i += 1
            continue
        block = []
        while i < len(lines) and lines[i].strip():
            block.append(lines[i])
            i += 1
        if out and out[-1].strip():
            out.append("")
        out += ["```pycon", *block, "```"]
    return "\n".join(out)


class FenceDoctests(griffe.Extension):
    """Fence the top-level doctest examples of every docstring."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        docstring = obj.docstring
        if docstring is not None and ">>>" in docstring.value:
            docstring.value = fence_doctests(docstring.value)
