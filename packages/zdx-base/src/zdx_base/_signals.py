"""SIGINT and SIGTERM held back until a run reaches a point where it can stop cleanly."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

_SIGNALS = ("SIGINT", "SIGTERM")


class DeferredSignals:
    """Holds back SIGINT and SIGTERM (what a scheduler sends before it kills) while inside
    :meth:`held`: the first is recorded in :attr:`signum` for the run to act on at its next
    clean stopping point; a second stops at once (``KeyboardInterrupt``).

    Attributes
    ----------
    signum : int or None
        The signal received while held, or ``None``.

    Examples
    --------
    >>> signals = DeferredSignals()
    >>> with signals.held():
    ...     pass  # work that should not be cut in the middle
    >>> signals.signum is None
    True
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    @contextlib.contextmanager
    def held(self) -> Iterator[DeferredSignals]:
        """Install the handlers (resetting :attr:`signum`) and restore the previous ones on
        leaving. Outside the main thread, where Python allows no handlers, nothing is
        installed."""
        self.signum = None
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {}

        def restore() -> None:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            previous.clear()

        def handle(signum, frame):
            if self.signum is not None:  # asked twice: stop now
                restore()
                raise KeyboardInterrupt
            self.signum = signum

        for name in _SIGNALS:
            signum = getattr(signal, name, None)
            if signum is not None:
                previous[signum] = signal.signal(signum, handle)
        try:
            yield self
        finally:
            restore()
