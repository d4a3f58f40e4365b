"""ravel's names line up with ravel_pytree; wrappers round-trip an equinox network."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import pytest
from jax.flatten_util import ravel_pytree

import zdx_base


def test_ravel_matches_ravel_pytree_and_names_every_scalar():
    params = {
        "wfe": jnp.arange(3.0),
        "position": {"blue": jnp.array([0.1, 0.2]), "red": jnp.array([0.3, 0.4])},
        "flux": {"blue": jnp.array(5.0)},
        "cov": jnp.eye(2),
    }
    flat, unravel, names = zdx_base.ravel(params)
    reference, _ = ravel_pytree(params)
    assert jnp.array_equal(flat, reference)
    assert len(names) == flat.size
    assert names[:5] == ("cov[0,0]", "cov[0,1]", "cov[1,0]", "cov[1,1]", "flux.blue")
    assert names[5:] == (
        "position.blue[0]",
        "position.blue[1]",
        "position.red[0]",
        "position.red[1]",
        "wfe[0]",
        "wfe[1]",
        "wfe[2]",
    )
    # every name without its index is a path that get understands
    for name, value in zip(names, flat):
        base, _, index = name.partition("[")
        leaf = zdx_base.get(params, base)
        idx = tuple(int(i) for i in index.rstrip("]").split(",")) if index else ()
        assert leaf[idx] == value
    assert eqx.tree_equal(unravel(flat), params)


def test_ravel_names_modules_and_lists():
    class M(zdx_base.Base):
        layers: list

    names = zdx_base.scalar_names(M([jnp.zeros(2), jnp.ones(())]))
    assert names == ("layers.0[0]", "layers.0[1]", "layers.1")


def test_ravel_refuses_non_numeric_leaves():
    with pytest.raises(TypeError, match="'label' is a str"):
        zdx_base.ravel({"label": "blue", "x": 1.0})


@pytest.fixture(scope="module")
def network():
    return eqx.nn.MLP(3, 2, width_size=4, depth=1, key=jr.key(0))


def test_wrapper_round_trips_a_network(network):
    values, structure = zdx_base.build_wrapper(network)
    n_params = sum(x.size for x in jax.tree.leaves(eqx.filter(network, eqx.is_array)))
    assert values.shape == (n_params,) == (structure.size,)
    rebuilt = structure.inject(values)
    x = jnp.arange(3.0)
    assert jnp.allclose(rebuilt(x), network(x))


def test_wrapper_holder_is_a_base(network):
    class Net(zdx_base.WrapperHolder):
        def __call__(self, x):
            return self.build(x)

    net = Net(*zdx_base.build_wrapper(network))
    zeroed = net.multiply("values", 0.0)
    assert jnp.all(zeroed(jnp.ones(3)) == 0.0)
    grads = jax.grad(lambda v: jnp.sum(net.set("values", v)(jnp.ones(3))))(net.values)
    assert grads.shape == net.values.shape and jnp.all(jnp.isfinite(grads))


def test_inject_checks_the_vector_length(network):
    values, structure = zdx_base.build_wrapper(network)
    with pytest.raises(ValueError, match=f"length {values.size}"):
        structure.inject(values[:-1])
