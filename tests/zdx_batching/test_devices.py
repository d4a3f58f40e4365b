"""Column blocks spread over several devices give the same matrices (two CPU devices).

The device count of the CPU backend is fixed when JAX starts, so the check runs in a
fresh Python process with ``XLA_FLAGS=--xla_force_host_platform_device_count=2``.
"""

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree
    import zdx_batching as batching

    assert len(jax.devices()) == 2, jax.devices()
    x = {
        "a": jnp.linspace(0.1, 1.0, 5),
        "b": 1.5,
        "m": jnp.array([[1.0, 2.0, 0.5], [3.0, -4.0, 0.2]]),
    }  # n = 12
    traces = [0]

    def loss(p):
        traces[0] += 1
        return jnp.sum(jnp.sin(p["a"]) ** 2 * p["b"]) + jnp.sum(p["m"] ** 3) * p["a"][0]

    def resid(p):
        return jnp.concatenate([jnp.tanh(p["a"] * p["b"]), jnp.ravel(p["m"] * p["a"][1])])

    x_flat, unravel = ravel_pytree(x)
    H_ref = jax.jit(jax.hessian(lambda z: loss(unravel(z))))(x_flat)
    J_ref = jax.jit(jax.jacfwd(lambda z: resid(unravel(z))))(x_flat)
    traces[0] = 0
    out = {"hessian": [], "jacobian": [], "fisher": [], "diagonal": [], "devices": []}
    for nbatches in (1, 5, 7):
        H, _ = batching.hessian(loss, x, nbatches=nbatches)
        out["hessian"].append(float(jnp.max(jnp.abs(H - H_ref))))
        out["devices"].append(len(H.sharding.device_set))
        J, _ = batching.jacobian(resid, x, nbatches=nbatches)
        out["jacobian"].append(float(jnp.max(jnp.abs(J - J_ref))))
        F, _ = batching.fisher(resid, x, nbatches=nbatches)
        out["fisher"].append(float(jnp.max(jnp.abs(F - J_ref.T @ J_ref))))
        d, _ = batching.hessian_diagonal(loss, x, nbatches=nbatches)
        out["diagonal"].append(float(jnp.max(jnp.abs(d - jnp.diag(H_ref)))))
    first = traces[0]
    batching.hessian(loss, x, nbatches=5)
    out["retraced"] = traces[0] - first
    H, _ = batching.hessian(loss, x, max_memory="1GB")
    out["max_memory"] = float(jnp.max(jnp.abs(H - H_ref)))

    class Bar:
        def __init__(self, name, total):
            self.total, self.n = total, 0
            bars.append(self)

        def update(self, k):
            self.n += k

        def close(self):
            pass

    # Structured curvature: the products of the colours dealt out over both devices.
    images = {"response": jnp.linspace(0.5, 1.5, 12).reshape(3, 4), "scale": 2.0}

    def model(p):
        return jnp.stack([p["response"] * p["scale"] ** k for k in (1, 2)]) ** 2

    flat_images, unravel_images = ravel_pytree(images)
    J_images = jax.jacfwd(lambda z: jnp.ravel(model(unravel_images(z))))(flat_images)
    declare = {"response": "elementwise"}
    F = batching.sparse_fisher(model, images, declare=declare)
    out["sparse_fisher"] = float(jnp.max(jnp.abs(F.todense() - J_images.T @ J_images)))
    out["sparse_devices"] = len(F.data.sharding.device_set)
    J = batching.sparse_jacobian(model, images, declare=declare)
    out["sparse_jacobian"] = float(jnp.max(jnp.abs(J.todense() - J_images)))
    sparse_loss = lambda p: jnp.sum(model(p) ** 1.5)
    H_images = jax.hessian(lambda z: sparse_loss(unravel_images(z)))(flat_images)
    H = batching.sparse_hessian(sparse_loss, images, declare=declare)
    out["sparse_hessian"] = float(jnp.max(jnp.abs(H.todense() - H_images)))
    one = batching.sparse_fisher(model, images, declare=declare, devices=jax.devices()[:1])
    out["sparse_one_device"] = float(jnp.max(jnp.abs(one.todense() - F.todense())))

    bars = []
    batching._program.progress_bar = Bar
    H, _ = batching.hessian(loss, x, nbatches=3, progress=True)
    out["progress"] = [bars[0].total, bars[0].n, float(jnp.max(jnp.abs(H - H_ref)))]
    print("RESULT " + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def two_devices(kit):
    env = kit.with_cpu_devices(2)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    line = [row for row in done.stdout.splitlines() if row.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def test_sharded_hessian_equals_jax_hessian(two_devices):
    assert max(two_devices["hessian"]) < 1e-10
    assert two_devices["devices"] == [2] * 3  # the result is replicated on both devices
    assert two_devices["max_memory"] < 1e-10


def test_sharded_jacobian_fisher_and_diagonal_are_right(two_devices):
    assert max(two_devices["jacobian"]) < 1e-10
    assert max(two_devices["fisher"]) < 1e-10
    assert max(two_devices["diagonal"]) < 1e-10


def test_sharded_programs_are_compiled_once(two_devices):
    assert two_devices["retraced"] == 0


def test_progress_counts_the_blocks_of_both_devices(two_devices):
    total, ticks, error = two_devices["progress"]
    assert total == 4 and ticks == 4  # 3 blocks rounded up to a multiple of 2 devices
    assert error < 1e-10


def test_structured_curvature_spread_over_devices_equals_the_dense_matrices(two_devices):
    assert two_devices["sparse_fisher"] < 1e-10
    assert two_devices["sparse_jacobian"] < 1e-10
    assert two_devices["sparse_hessian"] < 1e-10
    assert two_devices["sparse_devices"] == 2  # the matrix comes back on both devices
    assert two_devices["sparse_one_device"] < 1e-12
