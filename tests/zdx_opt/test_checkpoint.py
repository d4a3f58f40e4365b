"""fit_many with a checkpoint: block by block, a run stopped after any checkpoint and
resumed ends with the same fits, bit for bit, as a run never stopped; a checkpoint of
other data or settings is refused and left as it was."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import zdx_base
import zdx_opt


class _Killed(Exception):
    """Stands for SIGKILL right after a checkpoint was written."""


def _loss(params, data):
    return jnp.sum((params["x"] - data) ** 2) + 0.1 * jnp.sum(params["x"] ** 4)


DATA = jnp.linspace(-1.0, 1.0, 14).reshape(7, 2)
START = {"x": jnp.zeros((7, 2))}
SETTINGS = dict(steps=12, learning_rate=0.5, block_size=2)


@pytest.fixture(scope="module")
def whole():
    return zdx_opt.fit_many(_loss, START, DATA, **SETTINGS)


def _equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("writes", [1, 3])
def test_fit_many_resumed_after_a_kill_equals_the_uninterrupted_run(
    tmp_path, monkeypatch, whole, writes
):
    path = tmp_path / "fits.ckpt"
    original = zdx_base.Checkpoint.save
    blocks_done = []

    def save(self, entries, done, total):
        original(self, entries, done, total)
        blocks_done.append(done)
        if len(blocks_done) == writes:
            raise _Killed

    monkeypatch.setattr(zdx_base.Checkpoint, "save", save)
    with pytest.raises(_Killed):
        zdx_opt.fit_many(_loss, START, DATA, checkpoint=path, **SETTINGS)
    monkeypatch.undo()
    assert (
        zdx_base.Checkpoint("fit_many", path, model=None, settings={}, every=1).next_path.exists()
        is False
    )
    resumed = zdx_opt.fit_many(_loss, START, DATA, checkpoint=path, **SETTINGS)
    _equal(resumed, whole)
    assert blocks_done == list(range(1, writes + 1))


def test_fit_many_refuses_the_checkpoint_of_other_data_or_settings(tmp_path):
    path = tmp_path / "fits.ckpt"
    zdx_opt.fit_many(_loss, START, DATA, checkpoint=path, **SETTINGS)
    before = path.read_bytes()
    with pytest.raises(zdx_base.CheckpointError, match="another model"):
        zdx_opt.fit_many(_loss, START, DATA + 1.0, checkpoint=path, **SETTINGS)
    with pytest.raises(zdx_base.CheckpointError, match=r"block_size: 2 there, 3 now"):
        zdx_opt.fit_many(_loss, START, DATA, checkpoint=path, **dict(SETTINGS, block_size=3))
    assert path.read_bytes() == before
