"""The natural-gradient descent of the optics fit with a checkpoint: stopped after any
checkpoint and resumed, it ends with the same parameters, losses and history, bit for bit,
as a descent never stopped; a checkpoint of another start is refused."""

import jax
import jax.numpy as jnp
import numpy as onp
import pytest

import zdx_base
from zdx_examples import optics as ex

FILTERS = {"blue": jnp.linspace(1.0, 1.2, 2), "red": jnp.linspace(1.4, 1.6, 2)}


class _Killed(Exception):
    """Stands for SIGKILL right after a checkpoint was written."""


@pytest.fixture(scope="module")
def tiny():
    optics = ex.build_optics(FILTERS, npix=16, psf_npixels=8, n_zernike=3)
    sim = ex.simulate(optics, n_images=50)
    observations = [obs.set("data", obs(sim.true_params, optics)) for obs in sim.observations]
    sim = sim.set("observations", observations)
    flat, unravel, _ = zdx_base.ravel(sim.true_params)
    sizes = jnp.where(jnp.abs(flat) > 1, 1e-3 * jnp.abs(flat), 1e-3)
    start = unravel(flat + 3.0 * sizes * jax.random.normal(jax.random.key(0), flat.shape))
    return (sim.optics, sim.observations), start


SETTINGS = dict(steps=12, learning_rate=0.5, progress=False)


def test_a_descent_resumed_after_a_kill_equals_the_uninterrupted_one(tiny, tmp_path, monkeypatch):
    args, start = tiny
    whole = ex.natural_gradient_descent(start, args, **SETTINGS)
    original = zdx_base.Checkpoint.save

    def save(self, entries, done, total):
        original(self, entries, done, total)
        if done == 8:
            raise _Killed

    monkeypatch.setattr(zdx_base.Checkpoint, "save", save)
    path = tmp_path / "ngd.ckpt"
    with pytest.raises(_Killed):
        ex.natural_gradient_descent(start, args, checkpoint=path, checkpoint_every=4, **SETTINGS)
    monkeypatch.undo()
    resumed = ex.natural_gradient_descent(
        start, args, checkpoint=path, checkpoint_every=4, **SETTINGS
    )
    for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(whole)):
        onp.testing.assert_array_equal(onp.asarray(a), onp.asarray(b))

    other = jax.tree.map(lambda x: x * 1.0001, start)
    with pytest.raises(zdx_base.CheckpointError, match="another model"):
        ex.natural_gradient_descent(other, args, checkpoint=path, **SETTINGS)
