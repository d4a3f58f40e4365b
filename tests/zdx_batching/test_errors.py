"""Bad input gets an error naming the argument, the value given and what was expected."""

import jax.numpy as jnp
import numpy as np
import pytest

import zdx_batching as batching

X = {"a": jnp.array([1.0, 2.0, 3.0]), "b": 0.5}  # n = 4


def loss(p):
    return jnp.sum(p["a"] ** 2) * p["b"]


@pytest.mark.parametrize("transform", [batching.hessian, batching.jacobian, batching.fisher])
def test_nbatches_larger_than_n_names_both_numbers(transform):
    with pytest.raises(ValueError, match=r"nbatches=5 is larger than the number of parameters n=4"):
        transform(loss, X, nbatches=5)


@pytest.mark.parametrize("nbatches", [0, -2])
def test_nbatches_below_one(nbatches):
    with pytest.raises(ValueError, match=rf"nbatches must be at least 1, got nbatches={nbatches}"):
        batching.hessian(loss, X, nbatches=nbatches)


@pytest.mark.parametrize("nbatches", [2.0, "2", True, 3 + 0j])
def test_nbatches_must_be_an_integer(nbatches):
    with pytest.raises(TypeError, match="nbatches must be a positive integer"):
        batching.hessian(loss, X, nbatches=nbatches)


def test_hessian_of_a_vector_function_says_the_shape():
    with pytest.raises(
        ValueError, match=r"hessian: f must return a scalar, but f\(x\) has shape \(3,\)"
    ):
        batching.hessian(lambda p: p["a"] * p["b"], X)


def test_hessian_diagonal_and_hvp_also_need_a_scalar():
    with pytest.raises(ValueError, match="hessian_diagonal: f must return a scalar"):
        batching.hessian_diagonal(lambda p: p["a"], X)
    with pytest.raises(ValueError, match="hvp: f must return a scalar"):
        batching.hvp(lambda p: p["a"], X, X)


def test_f_must_return_one_floating_array():
    with pytest.raises(TypeError, match=r"jacobian: f must return one array.*tuple"):
        batching.jacobian(lambda p: (p["a"], p["b"]), X)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        ({"a": jnp.array([1.0, 2.0]), "n": 3}, r"integer leaf at \['n'\] \(value 3\)"),
        ({"a": jnp.array([1, 2])}, r"leaf of dtype int\d+ at \['a'\]"),
        ({"a": np.array([True, False])}, r"leaf of dtype bool at \['a'\]"),
        ({"a": jnp.array([1.0]), "name": "star"}, r"leaf of type str at \['name'\]"),
        ({"a": jnp.array([1.0 + 2.0j])}, r"leaf of dtype complex\d+ at \['a'\]"),
    ],
)
def test_leaves_that_are_not_floating_arrays_are_named(x, message):
    with pytest.raises(TypeError, match=message):
        batching.hessian(lambda p: jnp.sum(p["a"] ** 2), x)


def test_empty_parameters():
    with pytest.raises(ValueError, match="x has no parameters"):
        batching.hessian(lambda p: 0.0, {})
    with pytest.raises(ValueError, match="every leaf is empty"):
        batching.jacobian(lambda p: p, jnp.zeros(0))


def test_f_must_be_callable():
    with pytest.raises(TypeError, match=r"f must be a callable f\(x\), got int 3"):
        batching.fisher(3, X)


def test_flags_must_be_booleans():
    with pytest.raises(TypeError, match="checkpoint must be True or False, got str 'yes'"):
        batching.hessian(loss, X, checkpoint="yes")


@pytest.mark.parametrize("max_memory", ["2 parsecs", "GB", -5, 0, "0.5B"])
def test_max_memory_that_is_not_a_size(max_memory):
    with pytest.raises(ValueError, match="max_memory"):
        batching.hessian(loss, X, max_memory=max_memory)


def test_max_memory_of_the_wrong_type():
    with pytest.raises(TypeError, match=r"max_memory must be .* got \[1\]"):
        batching.hessian(loss, X, max_memory=[1])


def test_max_memory_too_small_for_one_column_says_what_one_column_needs():
    with pytest.raises(
        ValueError, match=r"max_memory=16 bytes .* too small .* one column needs \d+ bytes"
    ):
        batching.hessian(loss, X, max_memory=16)


def test_max_memory_needs_jit():
    with pytest.raises(ValueError, match="max_memory='1GB' needs jit=True"):
        batching.hessian(loss, X, max_memory="1GB", jit=False)


def test_hvp_vector_of_the_wrong_form():
    with pytest.raises(ValueError, match=r"v must be a flat vector of shape \(4,\)"):
        batching.hvp(loss, X, jnp.ones(3))
    with pytest.raises(ValueError, match="structure and leaf shapes of x"):
        batching.hvp(loss, X, {"a": jnp.ones(3)})
    with pytest.raises(TypeError, match="v must hold real floating-point numbers"):
        batching.hvp(loss, X, jnp.ones(4, dtype=int))
