"""float32 warns once for second derivatives; a NaN or inf result never passes silently."""

import warnings

import jax
import jax.numpy as jnp
import pytest

import zdx_batching as batching
from zdx_batching import _precision


@pytest.fixture
def fresh_warning():
    _precision.reset_float32_warning()
    yield
    _precision.reset_float32_warning()


def test_hessian_in_float32_warns_once_naming_the_switch(fresh_warning):
    f = lambda p: jnp.sum(p**3)  # noqa: E731
    with jax.enable_x64(False):
        x = jnp.array([1.0, 2.0])
        with pytest.warns(UserWarning, match=r'jax.config.update\("jax_enable_x64", True\)'):
            H, _ = batching.hessian(f, x)
        assert H.dtype == jnp.float32
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            batching.fisher(lambda p: p * 2.0, x)
            batching.hessian(f, x)


def test_fisher_in_float32_warns(fresh_warning):
    with jax.enable_x64(False):
        with pytest.warns(UserWarning, match="fisher: float64 is disabled"):
            batching.fisher(lambda p: p * 2.0, jnp.array([1.0, 2.0]))


def test_jacobian_in_float32_does_not_warn(fresh_warning):
    with jax.enable_x64(False), warnings.catch_warnings():
        warnings.simplefilter("error")
        batching.jacobian(lambda p: p * 2.0, jnp.array([1.0, 2.0]))


def test_float64_does_not_warn(fresh_warning):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batching.hessian(lambda p: jnp.sum(p**4), jnp.array([1.0, 2.0]))


@pytest.mark.parametrize("transform", [batching.hessian, batching.hessian_diagonal])
def test_a_nan_result_warns(transform):
    f = lambda p: jnp.sum(jnp.sqrt(p))  # noqa: E731  (infinite curvature at 0)
    with pytest.warns(RuntimeWarning, match="contains NaN or inf"):
        transform(f, jnp.array([0.0, 1.0]))
