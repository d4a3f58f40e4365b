"""The ``--out`` folder of a command that resumes: its settings and a record per piece of work.

A command given ``--out DIR`` keeps its progress in ``DIR/progress/``: ``settings.json``
(the command and every setting that changes the result) and one record per finished piece
of work (a data set, a block of data sets, a stage of a fit), each a :func:`zdx_base.save`
file (written beside and moved into place, so that a kill leaves it complete or absent;
its leaves checked by SHA-256 on reading) whose metadata repeats the command and the
settings. Run again with the same settings, the command loads the records it finds and
computes only the rest; a folder written with other settings is refused, naming the
settings that differ, unless ``restart`` discards its progress.

Several processes (``--num-processes N --process-id I``, e.g. the tasks of a SLURM job)
share one folder on a file system they all read: :meth:`RunFolder.share` deals the pieces
of work out over them, each process records its own, and process 0 waits for every record
(:meth:`RunFolder.gather`) and writes the summary. The processes are independent JAX
programs that meet only in the folder: each computes its pieces exactly as one process
computes them all, so the summary is the same, bit for bit. (Not ``jax.distributed``: under
it the family's transforms spread every call over the devices of all processes, so that a
process can no longer fit a data set on its own.)

SIGINT and SIGTERM (what a scheduler sends before it kills) inside
:meth:`RunFolder.interruptible` let the current piece of work finish and be recorded, then
stop the command with ``zdx_base.CheckpointInterrupted`` and a message saying how to resume.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import jax
import numpy as onp

import zdx_base
from zdx_base import checks

PROGRESS = "progress"
"""The sub-folder of ``--out`` that holds the settings and the records."""


class RunFolderError(ValueError):
    """A ``--out`` folder whose progress cannot be resumed by this run: written with other
    settings or by another command, or holding a damaged record. Nothing in it is changed."""


def _plain(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` as they read back from JSON (tuples become lists)."""
    return json.loads(json.dumps(dict(settings)))


def _write_text(path: pathlib.Path, text: str) -> None:
    """Write ``text`` to ``path`` complete or not at all (beside it, then moved)."""
    partial = path.parent / f".{path.name}.{uuid.uuid4().hex}.partial"
    with open(partial, "x") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)


class RunFolder:
    """The progress of ``command`` in the folder ``out``, for the settings ``settings``.

    Parameters
    ----------
    command : str
        The command (``"calibrate optics"``), written to the folder and named in messages.
    out : str or os.PathLike
        The ``--out`` folder (created if missing).
    settings : mapping
        Every JSON-serialisable setting that changes the result.
    restart : bool
        Discard the progress kept in the folder and start over (one process only).
    process_id, num_processes : int
        This process's index and how many processes share the work (0 and 1: alone).

    Raises
    ------
    NotADirectoryError
        If ``out`` is a file.
    ValueError
        If ``process_id`` is not in ``0 .. num_processes - 1``, or ``restart`` is asked of
        several processes.
    RunFolderError
        If the folder holds the progress of another command or of other settings (and not
        ``restart``): the message names every setting that differs.
    """

    def __init__(
        self,
        command: str,
        out: str | os.PathLike,
        settings: Mapping[str, Any],
        *,
        restart: bool = False,
        process_id: int = 0,
        num_processes: int = 1,
    ):
        self.command = command
        self.out = pathlib.Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise NotADirectoryError(f"--out must be a folder, but {str(self.out)!r} is a file.")
        num_processes = checks.check_int(command, "num_processes", num_processes, minimum=1)
        process_id = checks.check_int(command, "process_id", process_id, minimum=0)
        if process_id >= num_processes:
            raise ValueError(
                f"{command}: process_id must be below num_processes={num_processes}, got "
                f"process_id={process_id}."
            )
        if restart and num_processes > 1:
            raise ValueError(
                f"{command}: --restart (restart=True) with {num_processes} processes would "
                "let one process remove what another has just recorded: remove "
                f"{str(self.out / PROGRESS)!r} before starting them instead."
            )
        self.process_id, self.num_processes = process_id, num_processes
        self.folder = self.out / PROGRESS
        self.settings = _plain(settings)
        self._signals = zdx_base.DeferredSignals()
        if restart and self.folder.exists():
            shutil.rmtree(self.folder)
        manifest = self.folder / "settings.json"
        if manifest.exists():
            self._check(json.loads(manifest.read_text()), manifest)
        else:  # every process may write it: the same text, moved into place whole
            self.folder.mkdir(parents=True, exist_ok=True)
            record = {"command": command, "settings": self.settings}
            _write_text(manifest, json.dumps(record, indent=1) + "\n")

    # ------------------------------------------------------------------ checks

    def _refuse(self, why: str) -> RunFolderError:
        return RunFolderError(
            f"{self.command}: the folder {str(self.out)!r} holds progress {why}. Run with "
            "the same settings to resume it, add --restart (restart=True) to discard that "
            "progress and start over, or choose another --out."
        )

    def _check(self, saved: Mapping[str, Any], where: pathlib.Path) -> None:
        if saved.get("command") != self.command:
            raise self._refuse(f"of another command ({saved.get('command')!r}, in {str(where)!r})")
        was = saved.get("settings") or {}
        differ = sorted(
            n for n in set(was) | set(self.settings) if was.get(n) != self.settings.get(n)
        )
        if differ:
            shown = ", ".join(
                f"{name}: {was.get(name)!r} there, {self.settings.get(name)!r} now"
                for name in differ
            )
            raise self._refuse(f"written with other settings ({shown})")

    # ----------------------------------------------------------------- records

    def path(self, name: str) -> pathlib.Path:
        """The file of the record ``name``."""
        return self.folder / f"{name}.eqx"

    def load(self, name: str) -> tuple[dict[str, onp.ndarray], dict[str, Any]] | None:
        """The record ``name``: its arrays and its JSON ``info``, or None when not written.

        Raises
        ------
        RunFolderError
            If the record is damaged (truncated, bytes changed) or was written by another
            command or with other settings.
        """
        path = self.path(name)
        if not path.exists():
            return None
        try:
            info = zdx_base.saved_info(path)
            like = {
                leaf.path: jax.ShapeDtypeStruct(leaf.shape, onp.dtype(leaf.dtype))
                for leaf in info.leaves
            }
            arrays = zdx_base.load(path, like)
        except ValueError as err:
            raise RunFolderError(
                f"{self.command}: the record {str(path)!r} is damaged ({err}); remove it to "
                "compute that part again, or add --restart (restart=True) to start over."
            ) from None
        saved = info.metadata.get("record", {})
        self._check(saved, path)
        if saved.get("name") != name:
            raise self._refuse(f"with a record of {saved.get('name')!r} in {str(path)!r}")
        return {key: onp.asarray(value) for key, value in arrays.items()}, saved.get("info", {})

    def save(self, name: str, arrays: Mapping[str, Any], info: Mapping[str, Any] | None = None):
        """Record ``arrays`` (``key -> array``) and ``info`` (JSON) as ``name``, atomically."""
        record = {
            "command": self.command,
            "settings": self.settings,
            "name": name,
            "info": dict(info or {}),
        }
        tree = {str(key): onp.asarray(value) for key, value in arrays.items()}
        zdx_base.save(self.path(name), tree, overwrite=True, metadata={"record": record})

    # --------------------------------------------------------------- processes

    def share(self, count: int) -> list[int]:
        """The pieces of work of ``0 .. count - 1`` this process computes: every
        ``num_processes``-th from ``process_id`` (all of them for one process)."""
        return list(range(self.process_id, count, self.num_processes))

    def gather(self, names: Sequence[str], poll: float = 2.0, say: Any = None) -> list | None:
        """Every record of ``names`` (as :meth:`load` returns them), in order, once all are
        written; None in a process other than 0, which leaves the gathering to process 0.

        Process 0 waits for the records of the other processes, looking every ``poll``
        seconds and reporting through ``say`` (a function of one message) what it waits
        for every minute. A process that died leaves its records missing: start it again
        (or the whole command: the records already written are not redone).
        """
        if self.process_id != 0:
            return None
        waited = 0.0
        while True:
            missing = [name for name in names if not self.path(name).exists()]
            if not missing:
                return [self.load(name) for name in names]
            if say is not None and waited % 60 < poll:
                say(f"waiting for {len(missing)} records of the other processes ({missing[0]}...)")
            time.sleep(poll)
            waited += poll

    def left_to_process_0(self, done: int) -> dict[str, Any]:
        """What a process other than 0 returns: its index and how many pieces it recorded."""
        return {
            "process_id": self.process_id,
            "num_processes": self.num_processes,
            "recorded": done,
            "summary": f"written by process 0 into {str(self.out)!r}",
        }

    # ----------------------------------------------------------------- signals

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """While inside, SIGINT and SIGTERM let the current piece of work finish; the next
        :meth:`stop_if_asked` then stops the command. A second signal stops at once
        (``KeyboardInterrupt``). The previous handlers come back on leaving; outside the
        main thread nothing is installed."""
        with self._signals.held():
            yield

    def stop_if_asked(self, progress: str) -> None:
        """After recording a piece of work: stop if SIGINT or SIGTERM came meanwhile;
        ``progress`` says how far the command got (``"3 of 8 blocks"``).

        Raises
        ------
        zdx_base.CheckpointInterrupted
            With exit status ``128 + signal`` and a message saying how to resume.
        """
        if self._signals.signum is None:
            return
        message = resume_message(
            self.command,
            self.out,
            f"stopped by {signal.Signals(self._signals.signum).name} after {progress}",
        )
        print(message, file=sys.stderr, flush=True)
        raise zdx_base.CheckpointInterrupted(message, self._signals.signum)


def open_run_folder(
    command: str,
    out: str | os.PathLike | None,
    settings: Mapping[str, Any],
    restart: bool,
    process_id: int,
    num_processes: int,
) -> RunFolder | None:
    """``RunFolder(...)`` for ``out``, or None without ``out`` (one process only).

    Raises
    ------
    ValueError
        If several processes are asked for without ``out``: they share the work through it.
    """
    if out is not None:
        return RunFolder(
            command,
            out,
            settings,
            restart=restart,
            process_id=process_id,
            num_processes=num_processes,
        )
    if num_processes != 1:
        raise ValueError(
            f"{command}: {num_processes} processes share the work through the records of "
            "--out (`out`): give a folder that every process reads."
        )
    return None


def resume_message(command: str, out: str | os.PathLike, what: str) -> str:
    """``what`` happened to ``command``, where its progress is, and how to resume it."""
    return (
        f"zdx-examples {command}: {what}; the work done is recorded in "
        f"{str(pathlib.Path(out) / PROGRESS)!r}. Run the same command again with "
        f"--out {out!s} to continue from there."
    )
