"""The Fisher-matrix argument under its two names: ``fisher=`` and zodiax 0.5's ``fmat=``."""

from __future__ import annotations

from typing import Any


def fisher_argument(fn: str, fisher: Any, fmat: Any) -> Any:
    """The Fisher matrix given as ``fisher=`` or as ``fmat=`` (``None`` when neither).

    ``fisher`` is the name of the glossary; ``fmat`` is the name zodiax 0.5 code passes,
    and it keeps working.

    Raises
    ------
    TypeError
        If both names are given: ``fn`` cannot tell which matrix is meant.
    """
    if fisher is not None and fmat is not None:
        raise TypeError(
            f"{fn}: got the Fisher matrix twice, as fisher= and as fmat= (its zodiax 0.5 "
            "name); pass only one of them."
        )
    return fmat if fisher is None else fisher
