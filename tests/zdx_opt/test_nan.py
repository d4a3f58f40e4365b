"""NaN guards for gradients."""

import jax
import jax.numpy as jnp
import numpy as np

import zdx_opt as opt
from zdx_opt import _nan


def test_zero_nan_check_replaces_only_nans():
    grads = {"a": jnp.array([1.0, jnp.nan, jnp.inf]), "b": (jnp.array(jnp.nan), "label")}
    clean = opt.zero_nan_check(grads)
    np.testing.assert_array_equal(clean["a"], [1.0, 0.0, np.inf])
    assert float(clean["b"][0]) == 0.0
    assert clean["b"][1] == "label"
    np.testing.assert_array_equal(jax.jit(opt.zero_nan_check)(grads["a"]), [1.0, 0.0, np.inf])


def test_debug_nan_check_stops_only_on_nan(monkeypatch):
    seen = []
    monkeypatch.setattr(_nan.eqx.debug, "breakpoint_if", lambda pred: seen.append(bool(pred)))
    grads = {"a": jnp.ones(2), "b": jnp.arange(3)}
    assert opt.debug_nan_check(grads) is grads
    opt.debug_nan_check({"a": jnp.array([0.0, jnp.nan])})
    assert seen == [False, True]


def test_zero_nan_check_cleans_nan_leaves_of_every_kind_with_jax_debug_nans_on():
    grads = {"a": np.array([np.nan, 2.0]), "b": float("nan"), "c": np.float64("nan")}
    with jax.debug_nans(True):
        cleaned = opt.zero_nan_check(grads)
    np.testing.assert_array_equal(np.asarray(cleaned["a"]), [0.0, 2.0])
    assert float(cleaned["b"]) == 0.0 and float(cleaned["c"]) == 0.0
