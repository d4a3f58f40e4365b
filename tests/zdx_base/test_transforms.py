"""The path API under jax.jit, jax.grad and jax.vmap."""

import jax
import jax.numpy as jnp

import zdx_base
from zdx_base import Base


class Model(Base):
    amplitude: jnp.ndarray
    centres: dict

    def __call__(self, x):
        return self.amplitude * jnp.exp(-((x - self.centres["a"]) ** 2))


def make_model():
    return Model(jnp.array(2.0), {"a": jnp.array(0.5)})


def test_set_and_get_inside_jit():
    @jax.jit
    def shifted(model, shift):
        return model.add("centres.a", shift).get("centres.a")

    assert float(shifted(make_model(), 1.0)) == 1.5


def test_grad_through_set():
    x = jnp.linspace(-1, 1, 5)

    def loss(params):
        return jnp.sum(make_model().set(params)(x))

    params = {"amplitude": 3.0, "centres.a": 0.1}
    grads = jax.grad(loss)(params)
    expected = jax.grad(lambda amp, c: jnp.sum(amp * jnp.exp(-((x - c) ** 2))), argnums=(0, 1))(
        3.0, 0.1
    )
    assert jnp.allclose(grads["amplitude"], expected[0])
    assert jnp.allclose(grads["centres.a"], expected[1])


def test_vmap_over_values():
    model = make_model()
    values = jnp.array([1.0, 2.0, 3.0])
    out = jax.vmap(lambda v: model.multiply("amplitude", v).get("amplitude"))(values)
    assert jnp.allclose(out, 2.0 * values)
    batched = jax.vmap(lambda v: zdx_base.set({"a": 0.0}, "a", v)["a"] ** 2)(values)
    assert jnp.allclose(batched, values**2)
