"""Checkpoints of long runs: written atomically, checked on reading, resumed exactly.

A checkpoint is a :func:`zdx_base.save` file whose tree is a flat ``dict`` of arrays (the
run's state, random keys included) and whose metadata records the checkpoint format, the
function that wrote it, a :func:`fingerprint` of the model, the run's settings, and how
far the run got. The save format checks the leaves by SHA-256; the checkpoint's own
metadata carries a SHA-256 of itself. A new checkpoint is written completely beside the
old one (``<name>.next``, flushed to disk) before the old one becomes ``<name>.previous``
and the new one takes its name, so a kill at any moment leaves a complete checkpoint.

Exactness: the runs built on it resume with the very state they wrote, so a resumed run
computes the same numbers, bit for bit, as a run never stopped when both run on one
machine with the same versions of JAX and jaxlib, the same backend and the same devices
(XLA compiles the same programs, and the CPU programs of the family are deterministic).
Elsewhere the compiler may round differently (other CPU features, another jaxlib, GPU
reductions whose order is not fixed): the resumed run is then as valid, but agrees with
an uninterrupted one only to rounding. A checkpoint written by other JAX or jaxlib
versions is resumed with a ``RuntimeWarning`` saying so.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pathlib
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import equinox as eqx
import jax
import numpy as onp

from ._checks import check_int, check_number
from ._fingerprint import fingerprint
from ._save_format import package_versions, read, saved_info_of, sync_folder, write
from ._signals import DeferredSignals

CHECKPOINT_FORMAT = 1
"""The checkpoint format this version writes and reads."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed: damaged, written by another version, or for
    another model or other settings. The file is left as it was."""


class CheckpointInterrupted(SystemExit):
    """SIGINT or SIGTERM stopped a checkpointed run after writing a last checkpoint.

    A ``SystemExit`` (so a script ends cleanly) with exit status ``128 + signal number``;
    ``message`` says how to resume.
    """

    def __init__(self, message: str, signum: int):
        super().__init__(128 + signum)
        self.message = message
        self.signum = signum

    def __str__(self) -> str:
        return self.message


def _digest(record: Mapping[str, Any]) -> str:
    text = json.dumps(record, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` as they read back from JSON (tuples become lists)."""
    return json.loads(json.dumps(dict(settings)))


class Checkpoint:
    """Where a long run keeps its progress, and how often it writes it.

    The run goes in segments of ``every`` units (steps, iterations, blocks of data sets);
    after a segment, :meth:`reached` writes the state, or, with ``seconds``, only once
    that many seconds have passed since the last write (the last segment is always
    written). A resumed run therefore redoes at most one interval of work.

    Parameters
    ----------
    fn_name : str
        The public function running (written to the file, and the start of messages).
    path : str or os.PathLike
        The checkpoint file; ``<path>.next`` and ``<path>.previous`` are kept beside it.
    model : object
        What the run computes with (functions, data, starting point): its
        :func:`fingerprint` must match on resuming.
    settings : mapping
        JSON-serialisable settings that change the result; they must be equal on
        resuming (the message names the ones that differ).
    every : int
        Units of work per segment, >= 1.
    seconds : float, optional
        Write at most this often (None: after every segment).
    unit : str
        What the run counts, for messages (``"steps"``).

    Raises
    ------
    TypeError, ValueError
        If ``path`` is not a path, ``every`` not an integer >= 1, ``seconds`` not a
        positive number, or ``settings`` not JSON-serialisable.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, zdx_base
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.ckpt"
    >>> ckpt = zdx_base.Checkpoint("count", path, model="sum", settings={"n": 6}, every=2)
    >>> state, done = {"total": np.array(0)}, 0
    >>> with ckpt.interruptible():
    ...     for start, stop in ckpt.segments(done, 6):
    ...         state = {"total": state["total"] + sum(range(start, stop))}
    ...         ckpt.reached(stop, 6, state)
    >>> entries, done = ckpt.load()
    >>> int(entries["total"]), done
    (15, 6)
    """

    def __init__(
        self,
        fn_name: str,
        path: str | os.PathLike,
        *,
        model: Any,
        settings: Mapping[str, Any],
        every: int,
        seconds: float | None = None,
        unit: str = "steps",
    ):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(
                f"{fn_name}: `checkpoint` must be a file path (str or os.PathLike), got "
                f"{type(path).__name__}."
            )
        self.fn_name = fn_name
        self.path = pathlib.Path(path)
        self.every = check_int(fn_name, "checkpoint_every", every, minimum=1)
        self.seconds = check_number(
            fn_name, "checkpoint_seconds", seconds, positive=True, allow_none=True
        )
        try:
            self.settings = _plain(settings)
        except TypeError as err:
            raise TypeError(f"{fn_name}: the settings must be JSON-serialisable: {err}") from None
        self.fingerprint = fingerprint(model)
        self.unit = unit
        self.next_path = self.path.with_name(self.path.name + ".next")
        self.previous_path = self.path.with_name(self.path.name + ".previous")
        self._last_write = time.monotonic()
        self._signals = DeferredSignals()

    # ---------------------------------------------------------------- reading

    def load(self) -> tuple[dict[str, onp.ndarray], int] | None:
        """The saved state and how many units of work it holds, or None if there is none.

        Returns
        -------
        (dict, int) or None
            ``name -> array`` as written by :meth:`reached` (NumPy arrays; typed JAX random
            keys come back as such), and the units done. None
            when neither the file nor its ``.next``/``.previous`` companions exist. When
            the file itself is missing (a kill between the two renames of a write), the
            complete ``.next`` (newer) or ``.previous`` one is used.

        Raises
        ------
        CheckpointError
            If the file is truncated or corrupted, was written in another checkpoint
            format, by another function, for another model or with other settings. The
            message names the reason and what to do; no file is changed.
        """
        if self.path.exists():
            return self._read(self.path)
        for fallback in (self.next_path, self.previous_path):
            if fallback.exists():
                return self._read(fallback)
        return None

    def _refuse(self, path: pathlib.Path, why: str) -> CheckpointError:
        kept = [str(p) for p in (self.previous_path,) if p.exists() and p != path]
        note = (
            f" The previous checkpoint {kept[0]!r} is kept: move it to {str(self.path)!r} to "
            "resume from it."
            if kept
            else ""
        )
        return CheckpointError(
            f"{self.fn_name}: the checkpoint {str(path)!r} cannot be resumed: {why}. It was "
            f"left as it was; to start afresh, remove it or pass another `checkpoint` path."
            f"{note}"
        )

    def _read(self, path: pathlib.Path) -> tuple[dict[str, onp.ndarray], int]:
        try:
            description, data = read(path, self.fn_name)
        except (ValueError, KeyError, TypeError, OSError) as err:
            raise self._refuse(path, f"it is truncated or corrupted ({err})") from None
        try:
            info = saved_info_of(path, description)
            record = dict(info.metadata["checkpoint"])
        except (KeyError, TypeError, ValueError):
            raise self._refuse(path, "it is a zdx-base save file, not a checkpoint") from None
        if record.pop("digest", None) != _digest(record):
            raise self._refuse(path, "the checksum of its description does not match")
        if record.get("format") != CHECKPOINT_FORMAT:
            raise self._refuse(
                path,
                f"it has checkpoint format {record.get('format')!r}, and this zdx-base reads "
                f"format {CHECKPOINT_FORMAT} only (finish the run with the version that "
                "wrote it)",
            )
        if record.get("function") != self.fn_name:
            raise self._refuse(path, f"it was written by {record.get('function')}")
        if record.get("fingerprint") != self.fingerprint:
            raise self._refuse(
                path,
                "it was written for another model (the functions, the data they capture "
                "or the starting point differ)",
            )
        if record.get("settings") != self.settings:
            saved = record.get("settings") or {}
            differ = sorted(
                name
                for name in set(saved) | set(self.settings)
                if saved.get(name) != self.settings.get(name)
            )
            shown = ", ".join(
                f"{name}: {saved.get(name)!r} there, {self.settings.get(name)!r} now"
                for name in differ
            )
            raise self._refuse(path, f"it was written with other settings ({shown})")
        now = package_versions()
        changed = [
            f"{name} {info.versions.get(name)} -> {now.get(name)}"
            for name in ("jax", "jaxlib")
            if info.versions.get(name) != now.get(name)
        ]
        if changed:
            warnings.warn(
                f"{self.fn_name}: resuming {str(path)!r}, written with other versions "
                f"({', '.join(changed)}); the run continues, but its last bits may differ "
                "from those of a run never stopped (another compiler may round differently).",
                RuntimeWarning,
                stacklevel=3,
            )
        like = {
            leaf.path: jax.ShapeDtypeStruct(leaf.shape, onp.dtype(leaf.dtype))
            for leaf in info.leaves
        }
        entries = eqx.tree_deserialise_leaves(io.BytesIO(data), like)
        entries = {name: onp.asarray(value) for name, value in entries.items()}
        for name, impl in record.get("keys", {}).items():
            entries[name] = jax.random.wrap_key_data(entries[name], impl=impl)
        return entries, int(record["done"])

    # ---------------------------------------------------------------- writing

    def segments(self, done: int, total: int) -> Iterator[tuple[int, int]]:
        """``(start, stop)`` of each segment from ``done`` to ``total``, ``every`` long
        (counted from 0, so that a resumed run cuts the work where the first run did)."""
        start = done
        while start < total:
            stop = min(total, (start // self.every + 1) * self.every)
            yield start, stop
            start = stop

    def save(self, entries: Mapping[str, Any], done: int, total: int) -> None:
        """Write ``entries`` (``name -> array``) as the checkpoint after ``done`` of
        ``total`` units, atomically, keeping the last one as ``.previous``.

        Under ``jax.distributed`` only process 0 writes (the processes hold the same
        state): the path must then be on a file system that every process reads."""
        self._last_write = time.monotonic()
        if jax.process_count() > 1 and jax.process_index() != 0:
            return
        tree, keys = {}, {}
        for name, value in entries.items():
            if isinstance(value, jax.Array) and jax.dtypes.issubdtype(
                value.dtype, jax.dtypes.prng_key
            ):  # a typed random key: its data, and the name of its generator
                keys[str(name)] = str(jax.random.key_impl(value))
                value = jax.random.key_data(value)
            tree[str(name)] = onp.asarray(value)
        record = {
            "format": CHECKPOINT_FORMAT,
            "function": self.fn_name,
            "fingerprint": self.fingerprint,
            "settings": self.settings,
            "done": int(done),
            "total": int(total),
            "unit": self.unit,
            "keys": keys,
        }
        record["digest"] = _digest(record)
        write(self.next_path, tree, {"checkpoint": record}, True, self.fn_name)
        if self.path.exists():
            os.replace(self.path, self.previous_path)
        os.replace(self.next_path, self.path)
        sync_folder(self.path.parent)
        self._last_write = time.monotonic()

    def reached(
        self,
        done: int,
        total: int,
        entries: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
    ) -> None:
        """After a segment: write ``entries`` (``name -> array``, or a function returning
        them, called only when a write is due) when due, and stop if a signal came.

        Due: after every segment without ``seconds``; with it, once ``seconds`` have
        passed since the last write; always at the end (``done == total``) and after
        SIGINT or SIGTERM.

        Raises
        ------
        CheckpointInterrupted
            After writing, when SIGINT or SIGTERM arrived during the segment (inside
            :meth:`interruptible`); its message says how to resume.
        """
        due = (
            self.seconds is None
            or done >= total
            or self._signals.signum is not None
            or time.monotonic() - self._last_write >= self.seconds
        )
        if due:
            self.save(entries() if callable(entries) else entries, done, total)
        if self._signals.signum is not None:
            name = signal.Signals(self._signals.signum).name
            message = (
                f"{self.fn_name}: stopped by {name} after {done} of {total} {self.unit}; "
                f"the progress is saved in {str(self.path)!r}. Run the same call again "
                f"with checkpoint={str(self.path)!r} to continue from there."
            )
            print(message, file=sys.stderr, flush=True)
            raise CheckpointInterrupted(message, self._signals.signum)

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """While inside, SIGINT and SIGTERM let the current segment finish, then
        :meth:`reached` writes a checkpoint and raises :class:`CheckpointInterrupted`. A
        second signal stops at once (``KeyboardInterrupt``). The previous handlers are
        restored on leaving. Outside the main thread, where Python allows no handlers,
        nothing is installed."""
        with self._signals.held():
            yield
