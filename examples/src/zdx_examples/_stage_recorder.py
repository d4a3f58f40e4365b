"""One record per stage of a fit: how many steps, how many seconds, what it found."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

from tqdm.auto import tqdm


class Stage:
    """The stage being timed by :meth:`StageRecorder.stage`.

    ``stop(steps)`` stops the clock (work done after it, such as a diagnostic, is not
    counted); ``note(**details)`` adds what the stage reports (``chi2r=...``).
    """

    def __init__(self) -> None:
        self.steps = 1
        self.details: dict[str, Any] = {}
        self._clock = time.perf_counter()
        self.seconds: float | None = None

    def stop(self, steps: int) -> None:
        """Stop the clock; the stage took ``steps`` steps."""
        self.seconds = time.perf_counter() - self._clock
        self.steps = int(steps)

    def note(self, **details: Any) -> None:
        """Add entries to the stage's record."""
        self.details.update(details)


class StageRecorder:
    """Times the stages of a fit and keeps, per stage in the order they ran, a record
    ``{"steps": int, "seconds": float (rounded to ms), **details}``.

    Parameters
    ----------
    earlier : Mapping, optional
        Records of stages that ran before (e.g. the simulation), put first.
    progress : bool
        Write one line per stage on standard error when it ends.

    Examples
    --------
    >>> recorder = StageRecorder()
    >>> with recorder.stage("count") as stage:
    ...     total = sum(range(10))
    ...     stage.stop(steps=10)
    ...     stage.note(total=total)
    >>> recorder.records["count"]["steps"], recorder.records["count"]["total"]
    (10, 45)
    """

    def __init__(self, earlier: Mapping[str, dict] | None = None, progress: bool = False):
        self.records: dict[str, dict] = dict(earlier or {})
        self.progress = progress

    @contextlib.contextmanager
    def stage(self, name: str, unit: str = "steps") -> Iterator[Stage]:
        """Time the ``with`` block as the stage ``name`` and record it when the block ends;
        ``unit`` names its steps in the line written (``"exposures"``, ``"data sets"``)."""
        stage = Stage()
        yield stage
        if stage.seconds is None:
            stage.stop(stage.steps)
        self.records[name] = {
            "steps": stage.steps,
            "seconds": round(stage.seconds, 3),
            **stage.details,
        }
        details = ", ".join(
            f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}" for k, v in stage.details.items()
        )
        self.say(
            f"[{name}] {stage.steps} {unit} in {stage.seconds:.1f} s"
            + (f", {details}" if details else "")
        )

    def say(self, message: str) -> None:
        """Write ``message`` on standard error (above any progress bar) when ``progress``."""
        if self.progress:
            tqdm.write(message, file=sys.stderr)
