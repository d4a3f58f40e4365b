"""fit_many under jax.distributed: two processes of two CPU devices each fit 64 data sets
(their blocks dealt out over the four devices), and every process gets every fit, equal
to the fits of one process."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import jax.numpy as jnp
import numpy as np
import pytest

import zdx_opt

PROBLEM = textwrap.dedent(
    """
    import jax.numpy as jnp

    data = jnp.linspace(-1.0, 1.0, 64 * 2).reshape(64, 2)


    def loss(params, one):
        return jnp.sum((params["x"] - one) ** 2) + 0.1 * jnp.sum(params["x"] ** 4)
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
    import zdx_opt
    """
    )
    + PROBLEM
    + textwrap.dedent(
        """
    fits = zdx_opt.fit_many(loss, {"x": jnp.zeros((64, 2))}, data, steps=20, block_size=16)
    out = {"devices": len(jax.devices()), "processes": jax.process_count()}
    out["x"] = np.asarray(fits.params["x"]).tolist()
    out["losses"] = np.asarray(fits.losses).tolist()
    print("RESULT " + json.dumps(out), flush=True)
    jax.distributed.shutdown()
    """
    )
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_processes_of_two_devices_give_every_process_the_single_process_fits():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
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
    results = []
    try:
        for worker in workers:
            stdout, stderr = worker.communicate(timeout=300)
            assert worker.returncode == 0, stderr[-4000:]
            line = [row for row in stdout.splitlines() if row.startswith("RESULT ")][-1]
            results.append(json.loads(line[len("RESULT ") :]))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    problem: dict = {}
    exec(PROBLEM, problem)
    single = zdx_opt.fit_many(
        problem["loss"], {"x": jnp.zeros((64, 2))}, problem["data"], steps=20, block_size=16
    )
    assert [(r["processes"], r["devices"]) for r in results] == [(2, 4), (2, 4)]
    for result in results:
        np.testing.assert_allclose(result["x"], single.params["x"], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(result["losses"], single.losses, rtol=1e-12, atol=1e-14)
