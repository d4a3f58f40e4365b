"""Several processes (``jax.distributed``, gloo collectives on CPU) give every process the
same matrices as one process does.

Two Python processes are started on 127.0.0.1, each with two CPU devices, so that the
column blocks are dealt out over four devices of two processes. Each process computes
with ``zdx_batching`` and prints its results; they are compared here with ``jax.hessian``
and ``jax.jacfwd`` computed in this (single) process.
"""

import json
import socket
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

# The problem, shared by the workers and the single-process reference.
PROBLEM = textwrap.dedent(
    """
    import jax.numpy as jnp

    x = {"a": jnp.linspace(0.1, 1.0, 5), "b": 1.5, "m": jnp.array([[1.0, 2.0], [3.0, -4.0]])}
    args = {"data": jnp.array([0.3, -0.2, 0.1, 0.5, 0.9])}


    def loss(p, args):
        coupling = jnp.sum(p["m"] ** 3) * p["a"][0]
        return jnp.sum(jnp.sin(p["a"] - args["data"]) ** 2 * p["b"]) + coupling


    def resid(p, args):
        first = jnp.tanh(p["a"] * p["b"]) - args["data"]
        return jnp.concatenate([first, jnp.ravel(p["m"] * p["a"][1])])
    """
)

WORKER = (
    textwrap.dedent(
        """
    import json, sys
    import jax
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=sys.argv[1], num_processes=2, process_id=int(sys.argv[2])
    )
    import numpy as np
    import zdx_batching as batching
    """
    )
    + PROBLEM
    + textwrap.dedent(
        """
    out = {"devices": len(jax.devices()), "processes": jax.process_count()}
    out["hessian"] = np.asarray(batching.hessian(loss, x, 3, args=args)[0]).tolist()
    out["jacobian"] = np.asarray(batching.jacobian(resid, x, 2, args=args)[0]).tolist()
    out["fisher"] = np.asarray(batching.fisher(resid, x, 5, args=args)[0]).tolist()
    out["diagonal"] = np.asarray(batching.hessian_diagonal(loss, x, args=args)[0]).tolist()
    out["hvp"] = np.asarray(batching.hvp(loss, x, jnp.ones(10), args=args)).tolist()
    # structured curvature (patterns detected): the colours' products over the four devices
    sparse = batching.sparse_fisher(resid, x, args=args, dense_size=1)
    out["sparse_fisher"] = np.asarray(sparse.todense()).tolist()
    sparse = batching.sparse_hessian(loss, x, args=args, dense_size=1)
    out["sparse_hessian"] = np.asarray(sparse.todense()).tolist()
    print("RESULT " + json.dumps(out), flush=True)
    jax.distributed.shutdown()
    """
    )
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def results(kit):
    env = kit.with_cpu_devices(2)
    address = f"127.0.0.1:{_free_port()}"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, address, str(rank)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    outputs = []
    try:
        for worker in workers:
            stdout, stderr = worker.communicate(timeout=300)
            assert worker.returncode == 0, stderr[-4000:]
            line = [row for row in stdout.splitlines() if row.startswith("RESULT ")][-1]
            outputs.append(json.loads(line[len("RESULT ") :]))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    return outputs


@pytest.fixture(scope="module")
def expected():
    problem: dict = {}
    exec(PROBLEM, problem)
    x, args, loss, resid = (problem[name] for name in ("x", "args", "loss", "resid"))
    x_flat, unravel = ravel_pytree(x)
    H = jax.hessian(lambda z: loss(unravel(z), args))(x_flat)
    J = jax.jacfwd(lambda z: resid(unravel(z), args))(x_flat)
    return {
        "hessian": H,
        "jacobian": J,
        "fisher": J.T @ J,
        "diagonal": jnp.diag(H),
        "hvp": H @ jnp.ones(10),
        "sparse_fisher": J.T @ J,
        "sparse_hessian": H,
    }


@pytest.mark.slow
def test_every_process_gets_the_single_process_matrices(results, expected):
    assert [r["processes"] for r in results] == [2, 2]
    assert [r["devices"] for r in results] == [4, 4]  # two processes of two CPU devices
    for result in results:
        for name, value in expected.items():
            np.testing.assert_allclose(
                np.asarray(result[name]), np.asarray(value), rtol=1e-10, atol=1e-12, err_msg=name
            )
