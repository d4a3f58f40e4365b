"""Any point, any options: every result equals JAX's own in float64.

Hypothesis draws a point ``x`` (nested dicts, lists, tuples and equinox modules of float64
and float32 arrays, numpy arrays and Python floats), a kind of result and the options a
user may pass (``nbatches`` from ``None`` to more blocks than fit, ``jit``, ``checkpoint``,
data through ``args`` or a closure, a ``max_memory`` bound), and compares the result with
``jax.hessian`` / ``jax.jacfwd`` of the function on ``ravel_pytree``'s flat parameters.
"""

from __future__ import annotations

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jax.flatten_util import ravel_pytree

import zdx_batching as batching


class Node(eqx.Module):
    """A module holding one child and the rest of them (or ``None``)."""

    first: object
    rest: object
    label: str = eqx.field(static=True, default="node")


@st.composite
def leaves(draw):
    shape = draw(st.sampled_from([(), (1,), (2,), (3,), (2, 2)]))
    dtype = draw(st.sampled_from(["float64", "float64", "float32"]))
    size = int(np.prod(shape))
    values = draw(st.lists(st.floats(-1.5, 1.5), min_size=size, max_size=size))
    array = np.asarray(values, dtype=dtype).reshape(shape)
    kind = draw(st.sampled_from(["jax", "jax", "numpy"] + (["float"] if shape == () else [])))
    if kind == "float":
        return float(array)
    return jnp.asarray(array) if kind == "jax" else array


@st.composite
def points(draw, depth=0):
    if depth == 2 or draw(st.integers(0, 3)) == 0:
        return draw(leaves())
    children = draw(st.lists(points(depth + 1), min_size=1, max_size=3))
    kind = draw(st.sampled_from(["dict", "list", "tuple", "module"]))
    if kind == "dict":
        return {f"k{i}": child for i, child in enumerate(children)}
    if kind == "list":
        return children
    if kind == "tuple":
        return tuple(children)
    return Node(children[0], children[1:] or None)


def _flat64(x):
    leaves_ = jax.tree_util.tree_leaves(x)
    return jnp.concatenate([jnp.ravel(jnp.asarray(leaf, jnp.float64)) for leaf in leaves_])


def scalar_function(x, d):
    """Couples every parameter: a weighted sum, its square and a product of three."""
    z = _flat64(x)
    w = jnp.arange(1, z.size + 1) / z.size
    return jnp.sum(w * jnp.sin(z + d) * z**2) + 0.3 * jnp.sum(w * z) ** 2 + jnp.prod(jnp.cos(z[:3]))


def vector_function(x, d):
    """One residual per parameter and two that couple them."""
    z = _flat64(x)
    coupling = jnp.stack([jnp.sum(z**2), jnp.prod(jnp.cos(z[:2]))])
    return jnp.concatenate([jnp.sin(z * (1 + d)), coupling])


SCALAR_KINDS = ("hessian", "hessian_diagonal", "hvp")


def reference(kind, function, x, d):
    """What JAX computes on ``ravel_pytree``'s flat parameters."""
    flat, unflatten = ravel_pytree(x)

    def flat_function(z):
        return function(unflatten(z), d)

    if kind == "hessian":
        return jax.hessian(flat_function)(flat)
    if kind == "hessian_diagonal":
        return jnp.diag(jax.hessian(flat_function)(flat))
    if kind == "hvp":
        return jax.hessian(flat_function)(flat) @ jnp.ones_like(flat)
    J = jax.jacfwd(flat_function)(flat)
    return J if kind == "jacobian" else J.T @ J


def ours(kind, function, x, d, options, through_args):
    if through_args:
        f, extra = (lambda p, data: function(p, data)), {"args": d}
    else:
        f, extra = (lambda p: function(p, d)), {}
    if kind == "hvp":
        v = jax.tree_util.tree_map(lambda leaf: jnp.ones_like(jnp.asarray(leaf)), x)
        options = {"jit": options["jit"], "checkpoint": options["checkpoint"]}
        return ravel_pytree(batching.hvp(f, x, v, **options, **extra))[0]
    return getattr(batching, kind)(f, x, **options, **extra)[0]


@settings(max_examples=40, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    x=points(),
    d=st.floats(-1.0, 1.0),
    kind=st.sampled_from(["hessian", "jacobian", "fisher", "hessian_diagonal", "hvp"]),
    nbatches=st.one_of(st.none(), st.integers(1, 6)),
    jit=st.booleans(),
    checkpoint=st.booleans(),
    through_args=st.booleans(),
    bounded=st.booleans(),
)
def test_every_result_equals_jax_on_the_flat_parameters(
    x, d, kind, nbatches, jit, checkpoint, through_args, bounded
):
    n = ravel_pytree(x)[0].size
    options = {
        "nbatches": None if nbatches is None else min(nbatches, n),
        "jit": jit,
        "checkpoint": checkpoint,
        "max_memory": "1GB" if bounded and jit else None,
    }
    function = scalar_function if kind in SCALAR_KINDS else vector_function
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # float32 leaves: a warning, checked elsewhere
        got = np.asarray(ours(kind, function, x, jnp.asarray(d), options, through_args))
    expected = np.asarray(reference(kind, function, x, jnp.asarray(d)))
    assert got.shape == expected.shape
    leaves_ = jax.tree_util.tree_leaves(x)
    float32 = any(getattr(leaf, "dtype", None) == np.float32 for leaf in leaves_)
    tolerance = 1e-5 if float32 else 1e-10  # float32 leaves round their own entries
    scale = max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance * scale)
