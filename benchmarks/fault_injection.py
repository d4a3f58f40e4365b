"""Fault injection: checkpointed runs killed with SIGKILL at random moments, then resumed.

For each run type (``nuts``, ``nested_sampling``, ``variational``, ``fit_many``) a child
process runs the same small problem once without a checkpoint (the reference), then
``--kills`` times with a checkpoint: the parent kills it with SIGKILL at a random moment
(after a random number of checkpoint writes, plus a random delay, so some kills land in
the middle of a write or before the first one), then runs it again with the same
checkpoint until it finishes. Every final result must equal the reference bit for bit,
and the checkpoint found after a kill must hold every write the killed run had reported
(so the resumed run redoes less than one checkpoint interval of work).

    hatch run python benchmarks/fault_injection.py --kills 6      # 24 kills, ~10 min on 2 cores
    hatch run python benchmarks/fault_injection.py --kinds nuts --kills 2

The child mode (``--child KIND CHECKPOINT OUT``) is what the parent starts; the test
suite runs a few kills through :func:`inject` (tests/zdx_sample/test_fault_injection.py).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import tempfile
import time

KINDS = ("nuts", "nested_sampling", "variational", "fit_many")
EVERY = {"nuts": 10, "nested_sampling": 4, "variational": 25, "fit_many": 1}
# about how many checkpoints each run writes: a kill waits for a random number below it
WRITES = {"nuts": 20, "nested_sampling": 12, "variational": 12, "fit_many": 6}
HERE = pathlib.Path(__file__).resolve()


# ---------------------------------------------------------------------- the child


def _child(kind: str, checkpoint: str, out: str) -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np
    import numpyro.distributions as dist

    import zdx_base
    import zdx_opt
    import zdx_sample as zs

    original = zdx_base.Checkpoint.save

    def save(self, entries, done, total):  # report every completed write to the parent
        original(self, entries, done, total)
        print(f"saved {done}", flush=True)

    zdx_base.Checkpoint.save = save
    ckpt = None if checkpoint == "-" else checkpoint
    options = {} if ckpt is None else {"checkpoint": ckpt, "checkpoint_every": EVERY[kind]}

    centre = jnp.array([0.3, -0.2, 0.1])

    def loglike(p):
        return -0.5 * jnp.sum(((p["x"] - centre) / 0.4) ** 2)

    prior = {"x": dist.Uniform(-2.0, 2.0).expand([3])}
    start = {"x": jnp.zeros(3)}
    print("started", flush=True)
    if kind == "nuts":
        res = zs.nuts(
            loglike, start, prior, num_warmup=100, num_samples=100, num_chains=2, key=1,
            progress=False, **options,
        )  # fmt: skip
        arrays = {"draws": res.draws, "steps": res.integration_steps, "size": res.step_size}
    elif kind == "nested_sampling":
        res = zs.nested_sampling(
            loglike, prior, key=1, num_live=60, num_delete=6, progress=False, **options
        )
        arrays = {"dead": res.dead_points, "logw": res.log_weights, "logz": res.log_evidence}
    elif kind == "variational":
        res = zs.variational(
            loglike, start, prior, num_steps=300, key=1, progress=False, elbo_samples=200,
            importance_samples=0, **options,
        )  # fmt: skip
        arrays = {"loc": res.loc, "tril": res.scale_tril, "losses": res.losses}
    else:
        data = jnp.linspace(-1.0, 1.0, 36).reshape(12, 3)

        def loss(params, one):
            return jnp.sum((params["x"] - one) ** 2) + 0.1 * jnp.sum(params["x"] ** 4)

        fits = zdx_opt.fit_many(
            loss, {"x": jnp.zeros((12, 3))}, data, steps=40, learning_rate=0.5, block_size=2,
            **options,
        )  # fmt: skip
        arrays = {"x": fits.params["x"], "loss": fits.loss, "losses": fits.losses}
    np.savez(out, **{name: np.asarray(value) for name, value in arrays.items()})


# ---------------------------------------------------------------------- the parent


def _start(kind: str, checkpoint: str, out: pathlib.Path) -> subprocess.Popen:
    command = [sys.executable, str(HERE), "--child", kind, checkpoint, str(out)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> list[str]:
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the child failed ({process.returncode}):\n{stderr[-3000:]}")
    return stdout.split()


def _saved_done(path: pathlib.Path) -> int | None:
    """How far the checkpoint left after a kill goes (None: there is none yet)."""
    import zdx_base

    for suffix in ("", ".next", ".previous"):
        candidate = path.with_name(path.name + suffix)
        if candidate.exists():
            return zdx_base.saved_info(candidate).metadata["checkpoint"]["done"]
    return None


def _equal(a: pathlib.Path, b: pathlib.Path) -> bool:
    import numpy as np

    with np.load(a) as x, np.load(b) as y:
        return set(x) == set(y) and all(np.array_equal(x[k], y[k]) for k in x)


def inject(kind: str, kills: int, seed: int, folder: pathlib.Path) -> list[dict]:
    """``kills`` runs of ``kind`` killed and resumed; one record per kill."""
    rng = random.Random(seed)
    reference = folder / f"{kind}-reference.npz"
    _finish(_start(kind, "-", reference))
    records = []
    for k in range(kills):
        checkpoint = folder / f"{kind}-{k}.ckpt"
        out = folder / f"{kind}-{k}.npz"
        process = _start(kind, str(checkpoint), out)
        assert process.stdout.readline().strip() == "started"
        wait_for = rng.randrange(0, WRITES[kind] - 1)
        seen = []
        while len(seen) < wait_for:
            line = process.stdout.readline()
            if not line:
                break
            seen.append(int(line.split()[1]))
        time.sleep(rng.uniform(0.0, 0.3))
        process.send_signal(signal.SIGKILL)
        rest, _ = process.communicate()
        killed_at_end = process.returncode == 0
        seen += [int(word) for word in rest.split() if word.isdigit()]
        saved = _saved_done(checkpoint)
        last_reported = seen[-1] if seen else None
        _finish(_start(kind, str(checkpoint), out))
        records.append(
            {
                "kind": kind,
                "kill": k,
                "writes_seen_before_kill": len(seen),
                "checkpoint_done": saved,
                "last_reported_done": last_reported,
                "finished_before_kill": killed_at_end,
                # the resumed run starts at checkpoint_done; the killed one had reached at
                # most last_reported + every without writing it
                "lost_at_most_one_interval": last_reported is None
                or (saved or 0) >= last_reported,
                "equal": _equal(out, reference),
            }
        )  # fmt: skip
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", nargs=3, metavar=("KIND", "CHECKPOINT", "OUT"))
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--kills", type=int, default=6, help="kills per run type")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=pathlib.Path, help="write the records here")
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    started = time.perf_counter()
    records = []
    with tempfile.TemporaryDirectory() as folder:
        for i, kind in enumerate(args.kinds):
            records += inject(kind, args.kills, args.seed + i, pathlib.Path(folder))
            print(f"{kind}: {args.kills} kills done", file=sys.stderr, flush=True)
    for record in records:
        print(json.dumps(record))
    equal = sum(r["equal"] for r in records)
    killed = sum(not r["finished_before_kill"] for r in records)
    bounded = sum(r["lost_at_most_one_interval"] for r in records)
    print(
        f"{len(records)} kills ({killed} before the run ended): {equal} resumed runs "
        "equal to the uninterrupted one, "
        f"{bounded} redid less than one checkpoint interval; "
        f"{time.perf_counter() - started:.0f} s",
    )
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))
    if equal != len(records) or bounded != len(records):
        sys.exit(1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "random")
    main()
