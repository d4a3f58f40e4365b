"""Many fits in one program: fit_many equals a loop of the same optax natural-gradient
fits, and hessian_many equals jax.hessian per data set."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as onp
import optax
import pytest

import zdx_opt

TIMES = jnp.linspace(0.0, 3.0, 25)


def model(params, times):
    return params["amplitude"] * jnp.exp(-params["rate"] * times) + params["offset"]


def loss(params, args):
    times, data, error = args
    return jnp.mean(((model(params, times) - data) / error) ** 2)


def fisher(params, args):
    times, _, error = args

    def scaled(x):
        p = {"amplitude": x[0], "offset": x[1], "rate": x[2]}  # ravel_pytree order
        return model(p, times) / error

    flat = jnp.stack([params["amplitude"], params["offset"], params["rate"]])
    jac = jax.jacfwd(scaled)(flat)
    return 2.0 / times.size * jac.T @ jac


@pytest.fixture(scope="module")
def problem():
    n = 5
    keys = jax.random.split(jax.random.key(0), 3)
    truth = {
        "amplitude": 2.0 + jax.random.uniform(keys[0], (n,)),
        "offset": jnp.linspace(-0.2, 0.2, n),
        "rate": 1.0 + 0.3 * jax.random.uniform(keys[1], (n,)),
    }
    data = jax.vmap(model, in_axes=(0, None))(truth, TIMES)
    data = data + 0.01 * jax.random.normal(keys[2], data.shape)
    error = jnp.full(n, 0.01)
    start = {"amplitude": jnp.full(n, 2.5), "offset": jnp.zeros(n), "rate": jnp.full(n, 1.1)}
    return start, (TIMES, data, error), truth


def _loop_losses(start, args, steps, learning_rate, refresh_every):
    """The loss before each step of the same fit, as a loop over optax's chain of
    natural_gradient and sgd."""
    optim = optax.chain(
        zdx_opt.natural_gradient(lambda p: fisher(p, args), refresh_every=refresh_every),
        optax.sgd(learning_rate, momentum=0.5),
    )
    params, state = start, optim.init(start)
    losses = []
    for _ in range(steps):
        value, grads = jax.value_and_grad(loss)(params, args)
        losses.append(float(value))
        updates, state = optim.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return onp.array(losses)


def test_fit_many_equals_a_loop_of_optax_natural_gradient_fits(problem):
    start, args, _ = problem
    fits = zdx_opt.fit_many(
        loss,
        start,
        args,
        args_axes=(None, 0, 0),
        fisher_fn=fisher,
        steps=12,
        learning_rate=0.3,
        refresh_every=4,
    )
    assert fits.losses.shape == (5, 12)
    for i in (0, 3):
        one = {key: value[i] for key, value in start.items()}
        expected = _loop_losses(one, (TIMES, args[1][i], args[2][i]), 12, 0.3, 4)
        onp.testing.assert_allclose(fits.losses[i], expected, rtol=1e-10)
    onp.testing.assert_array_equal(fits.steps_done, 12)
    assert bool(jnp.all(fits.loss <= jnp.min(fits.losses, axis=1)))  # the best point seen


def test_fit_many_reaches_the_truth_and_blocks_do_not_change_the_answer(problem):
    start, args, truth = problem
    settings = dict(args_axes=(None, 0, 0), fisher_fn=fisher, steps=150, learning_rate=0.5)
    whole = zdx_opt.fit_many(loss, start, args, **settings)
    blocks = zdx_opt.fit_many(loss, start, args, block_size=2, progress=True, **settings)
    for key in truth:
        onp.testing.assert_allclose(whole.params[key], truth[key], atol=0.05)
        onp.testing.assert_allclose(blocks.params[key], whole.params[key], rtol=1e-12)
    onp.testing.assert_allclose(blocks.loss, whole.loss, rtol=1e-12)
    # at the best fit the loss is about 1 (the mean squared z-score of the noise)
    assert 0.4 < float(jnp.mean(whole.loss)) < 1.6


def test_one_data_set_after_another_gives_the_vectorised_answer(problem):
    start, args, _ = problem
    settings = dict(args_axes=(None, 0, 0), fisher_fn=fisher, steps=20, learning_rate=0.5)
    vmapped = zdx_opt.fit_many(loss, start, args, block_size=3, vectorise=True, **settings)
    mapped = zdx_opt.fit_many(loss, start, args, block_size=3, vectorise=False, **settings)
    for key in start:
        onp.testing.assert_allclose(mapped.params[key], vmapped.params[key], rtol=1e-12)
    onp.testing.assert_allclose(mapped.losses, vmapped.losses, rtol=1e-12)
    onp.testing.assert_array_equal(mapped.steps_done, vmapped.steps_done)
    at = {"args": args, "args_axes": (None, 0, 0)}
    onp.testing.assert_allclose(
        zdx_opt.hessian_many(loss, vmapped.params, vectorise=False, **at),
        zdx_opt.hessian_many(loss, vmapped.params, vectorise=True, **at),
        rtol=1e-12,
    )


def test_fit_many_default_metric_is_the_hessian():
    data = jnp.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]])
    fits = zdx_opt.fit_many(
        lambda p, d: jnp.sum((p - d) ** 2) + jnp.sum(p**4) * 0,
        jnp.zeros((3, 2)),
        data,
        steps=1,
        learning_rate=1.0,
    )
    # One Newton step on a quadratic lands on the minimum (learning rate 1, no momentum yet).
    last = data  # the point after the step
    onp.testing.assert_allclose(fits.params, last, atol=1e-7)


def test_fit_many_stops_a_fit_whose_loss_is_not_finite():
    def bad_loss(p, d):
        return jnp.where(d > 0, jnp.sum((p - d) ** 2), jnp.nan)

    fits = zdx_opt.fit_many(bad_loss, jnp.zeros((2, 1)), jnp.array([1.0, -1.0]), steps=5)
    assert fits.steps_done.tolist() == [5, 0]
    assert fits.stopped_early.tolist() == [False, True]
    assert bool(jnp.all(jnp.isnan(fits.losses[1])))
    onp.testing.assert_array_equal(fits.params[1], [0.0])


def test_hessian_many_equals_jax_hessian_per_data_set(problem):
    _, args, truth = problem
    hessians = zdx_opt.hessian_many(loss, truth, args, args_axes=(None, 0, 0), block_size=3)
    assert hessians.shape == (5, 3, 3)
    for i in range(5):
        one = jnp.stack([truth["amplitude"][i], truth["offset"][i], truth["rate"][i]])
        one_args = (TIMES, args[1][i], args[2][i])

        def flat_loss(x, one_args=one_args):
            return loss({"amplitude": x[0], "offset": x[1], "rate": x[2]}, one_args)

        expected = jax.hessian(flat_loss)(one)
        onp.testing.assert_allclose(hessians[i], expected, rtol=1e-10)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(steps=0), ValueError, "steps"),
        (dict(steps=2.5), TypeError, "steps"),
        (dict(learning_rate=0.0), ValueError, "learning_rate"),
        (dict(momentum=1.0), ValueError, "momentum"),
        (dict(block_size=0), ValueError, "block_size"),
        (dict(vectorise=1), TypeError, "fit_many: vectorise must be True or False, got int 1"),
        (dict(learning_rate="fast"), TypeError, "fit_many: learning_rate must be a finite"),
        (dict(momentum=1.0), ValueError, r"fit_many: momentum must be a number in \[0, 1\)"),
        (dict(args_axes=1), ValueError, "args_axes"),
    ],
)
def test_fit_many_refuses_bad_settings(kwargs, error, message):
    with pytest.raises(error, match=message):
        zdx_opt.fit_many(lambda p, d: jnp.sum(p**2), jnp.zeros((2, 1)), jnp.ones(2), **kwargs)


def test_leading_axes_must_agree():
    with pytest.raises(ValueError, match="leading"):
        zdx_opt.fit_many(lambda p, d: jnp.sum(p**2), jnp.zeros((2, 1)), jnp.ones(3))
    with pytest.raises(TypeError, match="loss_fn"):
        zdx_opt.fit_many("loss", jnp.zeros((2, 1)))


def test_data_sets_are_shared_over_devices():
    code = textwrap.dedent(
        """
        import jax, jax.numpy as jnp
        jax.config.update("jax_enable_x64", True)
        import zdx_opt
        assert len(jax.devices()) == 2
        data = jnp.arange(10.0).reshape(5, 2)
        fn = lambda p, d: jnp.sum((p - d) ** 2 * (1 + d))
        fits = zdx_opt.fit_many(fn, jnp.zeros((5, 2)), data, steps=20, learning_rate=1.0,
                                momentum=0.0, block_size=3)
        assert jnp.allclose(fits.params, data, atol=1e-10), fits.params
        h = zdx_opt.hessian_many(fn, data, data)
        assert jnp.allclose(h, jax.vmap(lambda d: jnp.diag(2 * (1 + d)))(data))
        traces = []

        def make(weights):  # a captured array travels to every device
            def fn(p, d):
                traces.append(1)  # a module-level name: not part of the capture
                return jnp.sum(weights * (p - d) ** 2)

            return fn

        zdx_opt.hessian_many(make(jnp.ones(2)), data, data, block_size=3)
        count = len(traces)
        h = zdx_opt.hessian_many(make(jnp.array([2.0, 3.0])), data, data, block_size=3)
        assert len(traces) == count, "compiled again"
        assert jnp.allclose(h, jnp.diag(jnp.array([4.0, 6.0]))), h
        print("ok")
        """
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("ok")
