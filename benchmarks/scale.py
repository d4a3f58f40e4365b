"""Curvature at scale: the detector-calibration Fisher matrix by colouring against dense columns.

    python benchmarks/scale.py                       # npix 32 and 64 (about 5 minutes)
    python benchmarks/scale.py --npix 32 64 128      # larger (dense stops at --dense-max)

For each detector size, two fresh processes on the same simulated data (the examples'
``detector_problem``, 3 x 3 dithers, 3 wavelengths, a 64 x 64 pupil): one computes the
Fisher matrix with ``zdx_batching.sparse_fisher`` (the pixel response declared
``"elementwise"``), the other with dense columns (``zdx_batching.fisher``). Each reports its
first call (pattern, colouring and compilation included), the median of two repeated
calls (a new ``lambda`` of the same code each time, as a user writes it), and its peak
resident memory, with the memory after building the problem as the baseline. The dense
matrix is saved and the sparse one compared with it entry by entry. The script also
records what automatic detection (asdex) finds for the pixel response.

Both processes compile at XLA's optimisation level 1 (``--xla_backend_optimization_level``):
on jaxlib 0.10 the default level crashes XLA's CPU backend on this model (see
``tests/zdx_examples/test_xla_cpu_crash.py``). Results go to ``results/<machine>/scale-*.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).parent
SAFE_XLA_FLAG = "--xla_backend_optimization_level=1"  # as zdx_examples._detector's
REPEATS = 2  # repeated calls per side (the median is reported)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, npix: int, folder: pathlib.Path) -> dict:
    """Run one side in this process and return its figures."""
    import jax
    import numpy as np

    import zdx_batching as zb
    from zdx_examples._detector import detector_problem

    jax.config.update("jax_enable_x64", True)
    problem = detector_problem(npix)
    jax.block_until_ready(problem.data)
    baseline = _peak_mb()
    model, sigma, truth = problem.model, problem.sigma, problem.truth
    out = {"mode": mode, "npix": npix, "n": problem.settings["nparams"], "baseline_mb": baseline}

    def once():
        if mode == "sparse":
            result = zb.sparse_fisher(
                lambda p: model(p) / sigma, truth, declare={"log_response": "elementwise"}
            )
            return jax.block_until_ready(result)
        matrix, _ = zb.fisher(lambda p: model(p) / sigma, truth)
        return jax.block_until_ready(matrix)

    start = time.perf_counter()
    result = once()
    out["first_s"] = time.perf_counter() - start
    repeats = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = once()
        repeats.append(time.perf_counter() - start)
    out["repeat_s"] = statistics.median(repeats)
    out["peak_mb"] = _peak_mb()
    if mode == "dense":
        np.save(folder / f"dense-{npix}.npy", np.asarray(result))
    else:
        out["nnz"] = result.nnz
        out["mismatch"] = float(result.mismatch)
        found = zb.find_sparsity(
            "fisher", lambda p: model(p) / sigma, truth, declare={"log_response": "elementwise"}
        )
        out["ncolours"] = found.ncolours
        dense_file = folder / f"dense-{npix}.npy"
        if dense_file.exists():
            dense = np.load(dense_file)
            sparse = np.asarray(result.todense())
            out["max_relative_difference"] = float(
                np.max(np.abs(sparse - dense)) / np.max(np.abs(dense))
            )
        start = time.perf_counter()
        try:
            detected = zb.find_sparsity("fisher", lambda p: model(p) / sigma, truth)
            zb.sparse_fisher(lambda p: model(p) / sigma, truth, sparsity=detected)
            out["detection"] = f"detected, {detected.ncolours} colours"
        except (zb.SparsityError, ImportError) as error:
            out["detection"] = f"{type(error).__name__}: {str(error)[:300]}"
        out["detection_s"] = time.perf_counter() - start
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npix", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--dense-max", type=int, default=64, help="largest npix run dense")
    parser.add_argument("--child", choices=["sparse", "dense"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        result = child(options.child, options.npix[0], pathlib.Path(options.folder))
        print("RESULT " + json.dumps(result), flush=True)
        return
    sys.path.insert(0, str(HERE))
    from machine import machine_name

    env = os.environ.copy()
    if "xla_backend_optimization_level" not in env.get("XLA_FLAGS", ""):
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + SAFE_XLA_FLAG).strip()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for npix in options.npix:
            for mode in ("dense", "sparse"):
                if mode == "dense" and npix > options.dense_max:
                    continue
                command = [sys.executable, __file__, "--child", mode, "--npix", str(npix)]
                done = subprocess.run(
                    [*command, "--folder", folder],
                    capture_output=True,
                    text=True,
                    env=env,
                    check=False,
                )
                line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
                if done.returncode != 0 or not line:
                    print(done.stdout[-2000:], done.stderr[-4000:], file=sys.stderr)
                    raise SystemExit(f"{mode} npix={npix} failed (exit {done.returncode})")
                row = json.loads(line[0][len("RESULT ") :])
                rows.append(row)
                print(json.dumps(row), flush=True)
    import jax

    report = {
        "machine": machine_name(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "rows": rows,
    }
    folder = HERE / "results" / machine_name()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"scale-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=1))
    print(f"wrote {path}")
    for npix in options.npix:
        side = {row["mode"]: row for row in rows if row["npix"] == npix}
        if "dense" in side and "sparse" in side:
            d, s = side["dense"], side["sparse"]
            memory = (d["peak_mb"] - d["baseline_mb"]) / max(s["peak_mb"] - s["baseline_mb"], 1)
            difference = s.get("max_relative_difference", float("nan"))
            print(
                f"npix {npix} (n={s['n']}): repeat {d['repeat_s'] / s['repeat_s']:.0f}x faster, "
                f"first call {d['first_s'] / s['first_s']:.1f}x, peak memory above baseline "
                f"{memory:.0f}x less; max relative difference {difference:.1e}"
            )


if __name__ == "__main__":
    main()
