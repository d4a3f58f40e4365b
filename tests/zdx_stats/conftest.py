"""Fixtures shared by the statistics tests."""

import jax
import pytest


@pytest.fixture(scope="session")
def gaussian_data():
    """``gaussian_data(seed, shape)``: random values, means and positive errors of ``shape``.

    The values and means are standard normal draws, the errors uniform in [0.5, 2].
    """

    def draw(seed: int, shape: tuple[int, ...]):
        kx, km, ks = jax.random.split(jax.random.key(seed), 3)
        x = jax.random.normal(kx, shape)
        mean = jax.random.normal(km, shape)
        error = jax.random.uniform(ks, shape, minval=0.5, maxval=2.0)
        return x, mean, error

    return draw
