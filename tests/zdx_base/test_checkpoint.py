"""Checkpoints: atomic, checked on reading, refused when damaged or foreign, resumed exactly."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import textwrap

import jax.numpy as jnp
import numpy as np
import pytest

import zdx_base
from zdx_base import Checkpoint, CheckpointError, CheckpointInterrupted


def _checkpoint(path, model="model-a", settings=None, every=3, fn_name="count"):
    return Checkpoint(fn_name, path, model=model, settings=settings or {"total": 10}, every=every)


def _run(ckpt: Checkpoint, total: int = 10, stop_after: int | None = None):
    """A toy run: a random walk whose state is the position and a NumPy generator's state."""
    loaded = ckpt.load()
    if loaded is None:
        state, done = {"x": np.zeros(3), "seed": np.array([7], np.uint64)}, 0
    else:
        state, done = loaded
    segments = 0
    with ckpt.interruptible():
        for start, stop in ckpt.segments(done, total):
            rng = np.random.default_rng(int(state["seed"][0]))
            x = state["x"].copy()
            for _ in range(start, stop):
                x = x + rng.normal(size=3)
            state = {"x": x, "seed": rng.integers(0, 2**62, size=1).astype(np.uint64)}
            ckpt.reached(stop, total, state)
            segments += 1
            if stop_after is not None and segments == stop_after:
                return None
    return state["x"]


def test_a_resumed_run_ends_exactly_where_an_uninterrupted_one_does(tmp_path):
    whole = _run(_checkpoint(tmp_path / "a.ckpt"))
    assert _run(_checkpoint(tmp_path / "b.ckpt"), stop_after=2) is None
    _, done = _checkpoint(tmp_path / "b.ckpt").load()
    assert done == 6
    np.testing.assert_array_equal(_run(_checkpoint(tmp_path / "b.ckpt")), whole)


def test_segments_are_cut_at_multiples_of_every_so_a_resumed_run_cuts_alike(tmp_path):
    ckpt = _checkpoint(tmp_path / "c.ckpt", every=4)
    assert list(ckpt.segments(0, 10)) == [(0, 4), (4, 8), (8, 10)]
    assert list(ckpt.segments(5, 10)) == [(5, 8), (8, 10)]
    assert list(ckpt.segments(10, 10)) == []


def test_a_write_keeps_the_last_good_checkpoint_as_previous(tmp_path):
    ckpt = _checkpoint(tmp_path / "c.ckpt")
    ckpt.save({"x": np.arange(3.0)}, 3, 10)
    ckpt.save({"x": np.arange(3.0) + 1}, 6, 10)
    assert ckpt.previous_path.exists() and not ckpt.next_path.exists()
    entries, done = ckpt.load()
    assert done == 6 and entries["x"][0] == 1.0
    os.replace(ckpt.previous_path, ckpt.path)
    assert ckpt.load()[1] == 3


def test_a_kill_between_the_two_renames_resumes_from_the_complete_files(tmp_path):
    ckpt = _checkpoint(tmp_path / "c.ckpt")
    ckpt.save({"x": np.zeros(2)}, 3, 10)
    ckpt.save({"x": np.ones(2)}, 6, 10)
    # the moment after `path -> previous` and before `next -> path`
    os.replace(ckpt.path, ckpt.next_path)
    assert ckpt.load()[1] == 6
    os.remove(ckpt.next_path)
    assert ckpt.load()[1] == 3


def _damage_truncate(path: pathlib.Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _damage_flip_leaf_byte(path: pathlib.Path) -> None:
    data = bytearray(path.read_bytes())
    data[200] ^= 0xFF  # inside the leaves (equinox's .npy records come first)
    path.write_bytes(bytes(data))


def _damage_flip_description_byte(path: pathlib.Path) -> None:
    data = bytearray(path.read_bytes())
    at = data.rfind(b'"done": 6')
    data[at + len('"done": ')] = ord("5")  # a well-formed but altered description
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage, reason",
    [
        (_damage_truncate, "truncated or corrupted"),
        (_damage_flip_leaf_byte, "checksum of its leaves does not match"),
        (_damage_flip_description_byte, "checksum of its description does not match"),
    ],
)
def test_a_damaged_checkpoint_is_refused_and_the_previous_one_is_kept(tmp_path, damage, reason):
    ckpt = _checkpoint(tmp_path / "c.ckpt")
    ckpt.save({"x": np.arange(40.0)}, 3, 10)
    ckpt.save({"x": np.arange(40.0) * 2}, 6, 10)
    damage(ckpt.path)
    damaged = ckpt.path.read_bytes()
    previous = ckpt.previous_path.read_bytes()
    with pytest.raises(CheckpointError, match=reason) as info:
        ckpt.load()
    assert "c.ckpt.previous" in str(info.value) and "move it to" in str(info.value)
    with pytest.raises(CheckpointError):
        _run(ckpt)  # a run refuses it before writing anything
    assert ckpt.path.read_bytes() == damaged and ckpt.previous_path.read_bytes() == previous
    os.replace(ckpt.previous_path, ckpt.path)
    assert ckpt.load()[1] == 3


@pytest.mark.parametrize(
    "other, reason",
    [
        (dict(model="model-b"), "another model"),
        (dict(settings={"total": 11}), r"other settings \(total: 10 there, 11 now\)"),
        (dict(fn_name="other"), "written by count"),
    ],
)
def test_a_checkpoint_of_another_model_settings_or_function_is_refused(tmp_path, other, reason):
    _run(_checkpoint(tmp_path / "c.ckpt"), stop_after=1)
    before = (tmp_path / "c.ckpt").read_bytes()
    with pytest.raises(CheckpointError, match=reason):
        _checkpoint(tmp_path / "c.ckpt", **other).load()
    assert (tmp_path / "c.ckpt").read_bytes() == before


def test_a_checkpoint_of_another_format_version_is_refused(tmp_path, monkeypatch):
    from zdx_base import _checkpoint as checkpoint_module

    monkeypatch.setattr(checkpoint_module, "CHECKPOINT_FORMAT", zdx_base.CHECKPOINT_FORMAT + 1)
    _checkpoint(tmp_path / "c.ckpt").save({"x": np.zeros(2)}, 3, 10)
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match=r"checkpoint format 2, and this zdx-base reads"):
        _checkpoint(tmp_path / "c.ckpt").load()


def test_a_plain_save_file_is_not_taken_for_a_checkpoint(tmp_path):
    zdx_base.save(tmp_path / "c.ckpt", {"x": jnp.zeros(2)})
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        _checkpoint(tmp_path / "c.ckpt").load()


def test_bad_checkpoint_arguments_name_the_argument(tmp_path):
    with pytest.raises(TypeError, match="`checkpoint` must be a file path"):
        Checkpoint("fit", 3, model=None, settings={}, every=1)
    with pytest.raises(ValueError, match="fit: checkpoint_every must be an integer >= 1"):
        Checkpoint("fit", tmp_path / "c", model=None, settings={}, every=0)
    with pytest.raises(ValueError, match="checkpoint_seconds"):
        Checkpoint("fit", tmp_path / "c", model=None, settings={}, every=1, seconds=-1.0)


def test_with_seconds_only_the_due_segments_and_the_last_are_written(tmp_path):
    ckpt = Checkpoint("count", tmp_path / "c", model=0, settings={}, every=1, seconds=3600.0)
    ckpt.reached(1, 3, lambda: {"x": np.zeros(1)})
    assert not ckpt.path.exists()
    ckpt.reached(3, 3, lambda: {"x": np.ones(1)})
    assert ckpt.load()[1] == 3


def test_sigterm_writes_a_last_checkpoint_and_exits_with_a_message(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "c.ckpt", every=1)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(CheckpointInterrupted) as info:
        with ckpt.interruptible():
            for _, stop in ckpt.segments(0, 10):
                if stop == 4:
                    os.kill(os.getpid(), signal.SIGTERM)  # arrives during the segment
                ckpt.reached(stop, 10, {"x": np.full(1, float(stop))})
    assert info.value.code == 128 + signal.SIGTERM
    assert "stopped by SIGTERM after 4 of 10 steps" in str(info.value)
    assert "checkpoint=" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before
    entries, done = ckpt.load()
    assert done == 4 and entries["x"][0] == 4.0


def test_fingerprints_follow_code_and_captured_arrays_not_identity():
    data = jnp.arange(3.0)
    same = [zdx_base.fingerprint(lambda p: p - data) for _ in range(2)]
    assert same[0] == same[1]
    assert zdx_base.fingerprint(lambda p: p + data) != same[0]
    assert zdx_base.fingerprint(lambda p: p - data.at[0].set(9.0)) != same[0]
    assert zdx_base.fingerprint({"a": 1.0}) != zdx_base.fingerprint({"a": 1.0000001})


def test_fingerprints_are_equal_in_another_process():
    code = textwrap.dedent(
        """
        import numpy as np, zdx_base
        data = np.arange(3.0)
        def loss(p, scale=2.0):
            return np.sum((p - data) ** 2) / scale
        print(zdx_base.fingerprint(loss, {"steps": 3}))
        """
    )
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        for _ in range(2)
    ]
    assert runs[0].stdout == runs[1].stdout and len(runs[0].stdout.strip()) == 64


def test_resuming_a_checkpoint_of_other_jax_versions_warns_that_bits_may_differ(
    tmp_path, monkeypatch
):
    from zdx_base import _checkpoint as checkpoint_module

    ckpt = _checkpoint(tmp_path / "c.ckpt")
    ckpt.save({"x": np.zeros(2)}, 3, 10)
    real = checkpoint_module.package_versions
    monkeypatch.setattr(
        checkpoint_module, "package_versions", lambda: {**real(), "jaxlib": "0.0.1"}
    )
    with pytest.warns(RuntimeWarning, match=r"jaxlib .* -> 0.0.1.*last bits may differ"):
        assert ckpt.load()[1] == 3
