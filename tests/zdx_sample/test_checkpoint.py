"""Checkpointed runs of nuts, nested_sampling and variational: a run stopped after any
checkpoint and resumed ends with the same numbers, bit for bit, as a run never stopped;
a checkpoint of another model or other settings is refused and left as it was."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

import zdx_base
import zdx_sample as zs


class _Killed(Exception):
    """Stands for SIGKILL right after a checkpoint was written."""


def _stop_after_writes(monkeypatch, writes: int) -> None:
    """Make the run die right after its ``writes``-th checkpoint write."""
    original = zdx_base.Checkpoint.save
    count = {"n": 0}

    def save(self, entries, done, total):
        original(self, entries, done, total)
        count["n"] += 1
        if count["n"] == writes:
            raise _Killed(done)

    monkeypatch.setattr(zdx_base.Checkpoint, "save", save)


def _loglike(p):
    return -0.5 * jnp.sum(((p["x"] - jnp.array([0.3, -0.2])) / 0.4) ** 2)


_PRIOR = {"x": dist.Uniform(-2.0, 2.0).expand([2])}
_START = {"x": jnp.zeros(2)}


def _assert_trees_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# ------------------------------------------------------------------ nested sampling

_NESTED = dict(key=3, num_live=40, num_delete=8, progress=False)


@pytest.fixture(scope="module")
def nested_whole():
    return zs.nested_sampling(_loglike, _PRIOR, **_NESTED)


def test_nested_sampling_resumed_after_a_kill_equals_the_uninterrupted_run(
    tmp_path, monkeypatch, nested_whole
):
    path = tmp_path / "ns.ckpt"
    _stop_after_writes(monkeypatch, 2)
    with pytest.raises(_Killed):
        zs.nested_sampling(_loglike, _PRIOR, checkpoint=path, checkpoint_every=3, **_NESTED)
    monkeypatch.undo()
    resumed = zs.nested_sampling(_loglike, _PRIOR, checkpoint=path, checkpoint_every=3, **_NESTED)
    assert resumed.num_iterations == nested_whole.num_iterations
    assert resumed.num_likelihood_evaluations == nested_whole.num_likelihood_evaluations
    _assert_trees_equal(
        (resumed.log_evidence, resumed.dead_points, resumed.samples, resumed.log_weights),
        (
            nested_whole.log_evidence,
            nested_whole.dead_points,
            nested_whole.samples,
            nested_whole.log_weights,
        ),
    )


@pytest.mark.filterwarnings("ignore:nested_sampling. stopped at max_iterations:RuntimeWarning")
def test_nested_sampling_refuses_the_checkpoint_of_another_likelihood_or_settings(tmp_path):
    path = tmp_path / "ns.ckpt"
    zs.nested_sampling(_loglike, _PRIOR, checkpoint=path, max_iterations=3, **_NESTED)
    before = path.read_bytes()
    other = dict(_NESTED, key=4)
    with pytest.raises(zdx_base.CheckpointError, match=r"other settings \(key:"):
        zs.nested_sampling(_loglike, _PRIOR, checkpoint=path, max_iterations=3, **other)
    with pytest.raises(zdx_base.CheckpointError, match="another model"):
        zs.nested_sampling(
            lambda p: 2.0 * _loglike(p), _PRIOR, checkpoint=path, max_iterations=3, **_NESTED
        )
    assert path.read_bytes() == before


# ------------------------------------------------------------------ variational

_VI = dict(num_steps=30, key=1, progress=False, elbo_samples=50, importance_samples=0)


@pytest.fixture(scope="module")
def vi_whole():
    return zs.variational(_loglike, _START, _PRIOR, **_VI)


def test_variational_in_checkpointed_segments_equals_the_single_program(tmp_path, vi_whole):
    segmented = zs.variational(
        _loglike, _START, _PRIOR, checkpoint=tmp_path / "vi.ckpt", checkpoint_every=7, **_VI
    )
    _assert_trees_equal(
        (segmented.loc, segmented.scale_tril, segmented.losses, segmented.elbo),
        (vi_whole.loc, vi_whole.scale_tril, vi_whole.losses, vi_whole.elbo),
    )


def test_variational_resumed_after_a_kill_equals_the_uninterrupted_run(
    tmp_path, monkeypatch, vi_whole
):
    path = tmp_path / "vi.ckpt"
    _stop_after_writes(monkeypatch, 2)
    with pytest.raises(_Killed):
        zs.variational(_loglike, _START, _PRIOR, checkpoint=path, checkpoint_every=7, **_VI)
    monkeypatch.undo()
    resumed = zs.variational(_loglike, _START, _PRIOR, checkpoint=path, checkpoint_every=7, **_VI)
    _assert_trees_equal(
        (resumed.loc, resumed.scale_tril, resumed.losses, resumed.elbo),
        (vi_whole.loc, vi_whole.scale_tril, vi_whole.losses, vi_whole.elbo),
    )


def test_variational_refuses_the_checkpoint_of_other_settings(tmp_path):
    path = tmp_path / "vi.ckpt"
    zs.variational(_loglike, _START, _PRIOR, checkpoint=path, **_VI)
    with pytest.raises(zdx_base.CheckpointError, match=r"num_steps: 30 there, 31 now"):
        zs.variational(_loglike, _START, _PRIOR, checkpoint=path, **dict(_VI, num_steps=31))


# ------------------------------------------------------------------ nuts

_NUTS = dict(num_warmup=30, num_samples=20, num_chains=2, key=2, progress=False)


@pytest.fixture(scope="module")
def nuts_whole():
    return zs.nuts(_loglike, _START, _PRIOR, **_NUTS)


def _assert_same_draws(a, b):
    _assert_trees_equal(
        (a.draws, a.step_size, a.warmup_gradients, a.integration_steps, a.log_density),
        (b.draws, b.step_size, b.warmup_gradients, b.integration_steps, b.log_density),
    )


@pytest.mark.parametrize("writes", [2, 5])  # in warm-up; in sampling (segments of 8 steps)
def test_nuts_resumed_after_a_kill_equals_the_uninterrupted_run(
    tmp_path, monkeypatch, nuts_whole, writes
):
    path = tmp_path / "nuts.ckpt"
    _stop_after_writes(monkeypatch, writes)
    with pytest.raises(_Killed):
        zs.nuts(_loglike, _START, _PRIOR, checkpoint=path, checkpoint_every=8, **_NUTS)
    monkeypatch.undo()
    resumed = zs.nuts(_loglike, _START, _PRIOR, checkpoint=path, checkpoint_every=8, **_NUTS)
    _assert_same_draws(resumed, nuts_whole)


def test_nuts_refuses_a_chain_method_it_cannot_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="with a checkpoint the chains run vectorized"):
        zs.nuts(
            _loglike, _START, _PRIOR, checkpoint=tmp_path / "c", chain_method="sequential", **_NUTS
        )


def test_nuts_refuses_the_checkpoint_of_another_key(tmp_path):
    path = tmp_path / "nuts.ckpt"
    zs.nuts(_loglike, _START, _PRIOR, checkpoint=path, **_NUTS)
    with pytest.raises(zdx_base.CheckpointError, match=r"other settings \(key: "):
        zs.nuts(_loglike, _START, _PRIOR, checkpoint=path, **dict(_NUTS, key=5))
