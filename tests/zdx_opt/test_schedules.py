"""delay: zero until `start`, then a linear ramp to `lr`."""

import jax
import numpy as np
import pytest

import zdx_opt as opt


def test_delay_is_zero_until_start_then_ramps_to_lr():
    schedule = opt.delay(0.5, start=20, length=4)
    steps = np.arange(60)
    values = np.array([float(schedule(s)) for s in steps])
    np.testing.assert_array_equal(values[steps <= 20], 0.0)
    np.testing.assert_allclose(values[21:25], 0.5 * np.arange(1, 5) / 4, rtol=1e-15)
    np.testing.assert_array_equal(values[steps >= 24], 0.5)


def test_delay_default_length_switches_on_in_one_step_and_jits():
    schedule = jax.jit(opt.delay(0.005, 50))
    assert float(schedule(50)) == 0.0
    assert float(schedule(51)) == pytest.approx(0.005, rel=1e-15)


@pytest.mark.parametrize(
    "args, error, match",
    [
        ((float("nan"), 3), ValueError, "delay: lr must be"),
        ((0.1, -1), ValueError, "delay: start must be an integer >= 0"),
        ((0.1, 2, 0), ValueError, "delay: length must be an integer >= 1"),
        ((0.1, 1.5), TypeError, "delay: start must be an integer"),
        (("0.1", 3), TypeError, "delay: lr must be"),
    ],
)
def test_delay_refuses_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        opt.delay(*args)
