"""Curvature from 10^3 to 6.5 x 10^4 parameters: colouring against dense columns, and the
matrix-free estimates against the exact ones, on the detector-calibration problem.

    python benchmarks/scale_sweep.py                         # npix 16 32 64 128 256
    python benchmarks/scale_sweep.py --npix 32 64 --kinds sparse_fisher dense_fisher
    python benchmarks/scale_sweep.py --devices               # dense and sparse over 2 CPUs
    python benchmarks/scale_sweep.py --table results/.../scale_sweep-*.json   # markdown

The problem is the examples' ``detector_problem`` at ``npix`` pixels across (``npix**2 + 22``
parameters), built small so that the sweep runs in minutes: a ``--pupil``-sample pupil,
``--dithers`` x ``--dithers`` pointings, ``--wavelengths`` wavelengths. Every measurement
runs in a fresh process of its own (so no compiled program or cache is shared), at the
true parameters:

- ``sparse_fisher``: ``zdx_batching.sparse_fisher`` of ``model / sigma``, the pixel
  response declared ``"elementwise"`` (pattern, colouring and compilation in the first
  call);
- ``sparse_hessian``: ``zdx_batching.sparse_hessian`` of ``chi2 / 2``, declared the same way
  (the response's own block is diagonal, coupled to every global parameter);
- ``detected_fisher``: ``sparse_fisher`` with nothing declared: every leaf's pattern found
  by asdex (or dense, for the small leaves) in the first call;
- ``dense_fisher`` and ``dense_hessian``: ``zdx_batching.fisher`` and ``hessian`` (dense
  columns, the library's default blocks), only up to ``--dense-max`` parameters; above it
  the row records the size the dense matrix alone would take (``n**2`` float64 numbers);
- ``matrix_free``: the posterior precision ``A = F + P`` (``F`` the Fisher matrix, ``P``
  the calibration example's priors: ``log_response`` sd 0.05, ``log_jitter`` sd 0.7).
  Exact: ``SchurFactor`` of the sparse ``F + P`` (every variance and ``log det A``).
  Matrix-free: ``marginal_variances`` by conjugate gradients on ``fisher_operator + P``
  (Jacobi preconditioner, its diagonal read from the sparse matrix) for the 22 global
  parameters and ``--responses`` random pixel responses; ``log_determinant`` by stochastic
  Lanczos quadrature of the Jacobi-scaled ``D^-1/2 A D^-1/2`` (``log det A`` is that plus
  ``sum log D``: the scaling only brings the spectrum near 1), over ``--seeds`` keys.

Time: the first call alone, and the median of ``--repeats`` repeated calls (a new
function object of the same code each time, as a user writes it). Peak memory: the
process's resident high-water mark, reset (Linux ``/proc/self/clear_refs``) just before
the call, minus the resident memory then; for the repeated calls the largest over them.

``--devices`` instead measures the dense and the sparse Fisher matrix with ``XLA_FLAGS=
--xla_force_host_platform_device_count=2`` (zdx_batching deals the column blocks out
over ``jax.devices()``, the sparse calls their colours' products) against one device,
and compares the matrices.

Every process compiles at XLA's optimisation level 1 (jaxlib 0.10's CPU backend crashes on
this model at the default level; see ``tests/zdx_examples/test_xla_cpu_crash.py``).
Results: ``results/<machine>/scale_sweep-*.json`` (``scale_devices-*.json`` with ``--devices``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).parent
SAFE_XLA_FLAG = "--xla_backend_optimization_level=1"  # as zdx_examples._detector's
KINDS = (
    "sparse_fisher",
    "sparse_hessian",
    "dense_fisher",
    "dense_hessian",
    "matrix_free",
    "detected_fisher",
)
PASSED = (
    "pupil",
    "dithers",
    "wavelengths",
    "repeats",
    "responses",
    "rtol",
    "seeds",
    "probes",
    "order",
)
NGLOBAL = 22  # flux, position (2), Zernike terms (18), jitter


def _objective(residuals, params):
    import jax.numpy as jnp

    return 0.5 * jnp.sum(residuals(params) ** 2)


def _problem(options):
    from zdx_examples._detector import detector_problem

    return detector_problem(
        options.npix[0],
        pupil_npix=options.pupil,
        ndither=options.dithers,
        nwavels=options.wavelengths,
    )


def _prior_precision(truth):
    """The calibration example's priors as a flat precision vector (0 where none)."""
    import numpy as np

    from zdx_base import ravel
    from zdx_examples._calibrate_detector import JITTER_PRIOR, RESPONSE_SCATTER

    precision = {name: np.zeros(np.shape(leaf)) for name, leaf in truth.items()}
    precision["log_response"] += RESPONSE_SCATTER**-2
    precision["log_jitter"] += JITTER_PRIOR[1] ** -2
    return np.asarray(ravel(precision).flat)


def _timed_calls(once, repeats: int) -> dict:
    from scale_matrix_free import Stage

    with Stage() as first:
        result = once()
    stages = []
    for _ in range(repeats):
        with Stage() as stage:
            result = once()
        stages.append(stage)
    return result, {
        "first_s": round(first.seconds, 3),
        "first_peak_mb": round(first.peak_mb, 1),
        "repeat_s": round(statistics.median(s.seconds for s in stages), 3),
        "repeat_peak_mb": round(max(s.peak_mb for s in stages), 1),
    }


def child_curvature(kind: str, options) -> dict:
    """One of the four matrices, first and repeated calls, in this process."""
    import jax
    import numpy as np

    import zdx_batching as zb

    problem = _problem(options)
    jax.block_until_ready(problem.data)
    truth = problem.truth
    # detected_fisher: the Fisher matrix with every pattern found by asdex (nothing declared)
    declare = None if kind == "detected_fisher" else {"log_response": "elementwise"}

    def once():
        # The properties build a new partial of the same code and data on every call.
        objective = functools.partial(_objective, problem.residuals)
        if kind in ("sparse_fisher", "detected_fisher"):
            out = zb.sparse_fisher(problem.scaled_model, truth, declare=declare)
        elif kind == "sparse_hessian":
            out = zb.sparse_hessian(objective, truth, declare=declare)
        elif kind == "dense_fisher":
            out = zb.fisher(problem.scaled_model, truth)[0]
        else:
            out = zb.hessian(objective, truth)[0]
        return jax.block_until_ready(out)

    result, row = _timed_calls(once, options.repeats)
    if kind == "detected_fisher":
        kind = "sparse_fisher"  # compared with the dense Fisher matrix below
    if kind.startswith("sparse"):
        row["nnz"] = int(result.nnz)
        row["mismatch"] = float(result.mismatch)
        found = zb.find_sparsity(
            kind.split("_")[1],
            functools.partial(_objective, problem.residuals)
            if kind == "sparse_hessian"
            else problem.scaled_model,
            truth,
            declare=declare,
        )
        row["ncolours"] = int(found.ncolours)
        matrix = result.to_scipy()
    else:
        matrix = np.asarray(result)
    path = pathlib.Path(options.folder) / f"{kind}-{options.npix[0]}.npz"
    if kind.startswith("dense"):
        np.savez(path, matrix=matrix)
    else:
        other = pathlib.Path(options.folder) / f"dense_{kind.split('_')[1]}-{options.npix[0]}.npz"
        if other.exists():
            dense = np.load(other)["matrix"]
            difference = np.abs(matrix.toarray() - dense).max() / np.abs(dense).max()
            row["max_relative_difference_to_dense"] = float(difference)
    return row


def child_matrix_free(options) -> dict:
    """Marginal variances and the log-determinant, matrix-free against exact."""
    import jax
    import jax.numpy as jnp
    import lineax as lx
    import numpy as np
    import scipy.sparse as sp
    from scale_matrix_free import Stage

    import zdx_batching as zb

    problem = _problem(options)
    truth = problem.truth
    precision = _prior_precision(truth)
    n = precision.size
    row = {}
    with Stage() as exact_stage:
        fisher = zb.sparse_fisher(
            problem.scaled_model, truth, declare={"log_response": "elementwise"}
        )
        matrix = fisher.to_scipy() + sp.diags(precision)
        factor = zb.SchurFactor(matrix)
        exact_variances = factor.inverse_diagonal()
        exact_logdet = factor.logdet()
    row["exact"] = {
        "what": "sparse_fisher + prior, SchurFactor: every variance and log det",
        "seconds": round(exact_stage.seconds, 3),
        "peak_mb": round(exact_stage.peak_mb, 1),
        "log_det": exact_logdet,
    }
    diagonal = matrix.diagonal()
    operator = zb.fisher_operator(problem.scaled_model, truth) + lx.DiagonalLinearOperator(
        jnp.asarray(precision)
    )
    # The global parameters and the responses by their names (the flat order is ravel's).
    names = list(fisher.names)
    globals_ = [i for i, name in enumerate(names) if not name.startswith("log_response")]
    responses = [i for i, name in enumerate(names) if name.startswith("log_response")]
    rng = np.random.default_rng(0)
    chosen = globals_ + sorted(rng.choice(responses, options.responses, replace=False).tolist())
    preconditioner = lx.TaggedLinearOperator(
        lx.DiagonalLinearOperator(jnp.asarray(1.0 / diagonal)),
        (lx.symmetric_tag, lx.positive_semidefinite_tag),
    )

    def variances():
        found = zb.marginal_variances(
            operator, chosen, rtol=options.rtol, preconditioner=preconditioner
        )
        return jax.block_until_ready(found)

    with Stage() as first:
        found = variances()
    with Stage() as repeat:
        found = variances()
    relative = np.abs(np.asarray(found.variances) - exact_variances[chosen])
    relative = relative / exact_variances[chosen]
    row["marginal_variances"] = {
        "count": len(chosen),
        "globals": len(globals_),
        "rtol": options.rtol,
        "preconditioner": "Jacobi (1 / diag(F + P), from the sparse matrix)",
        "max_relative_error": float(relative.max()),
        "max_relative_error_globals": float(relative[: len(globals_)].max()),
        "max_relative_error_responses": float(relative[len(globals_) :].max()),
        "max_reported_bound": float(np.max(found.relative_error_bounds)),
        "errors_within_bounds": bool(np.all(relative <= np.asarray(found.relative_error_bounds))),
        "cg_steps_max": int(np.max(found.steps)),
        "all_converged": bool(np.all(found.converged)),
        "first_s": round(first.seconds, 3),
        "repeat_s": round(repeat.seconds, 3),
        "repeat_peak_mb": round(repeat.peak_mb, 1),
    }

    scale = jnp.asarray(1.0 / np.sqrt(diagonal))
    scaled = lx.FunctionLinearOperator(
        lambda v: scale * operator.mv(scale * v),
        jax.ShapeDtypeStruct((n,), jnp.float64),
        (lx.symmetric_tag, lx.positive_semidefinite_tag),
    )
    shift = float(np.sum(np.log(diagonal)))
    estimates, errors, stages = [], [], []
    for seed in range(options.seeds):
        with Stage() as stage:
            out = zb.log_determinant(
                scaled, probes=options.probes, order=options.order, key=seed, batch_size=8
            )
            jax.block_until_ready(out.value)
        stages.append(stage)
        estimates.append(float(out.value) + shift)
        errors.append(float(out.standard_error))
    estimates, errors = np.array(estimates), np.array(errors)
    pulls = (estimates - exact_logdet) / errors
    row["log_determinant"] = {
        "probes": options.probes,
        "order": options.order,
        "seeds": options.seeds,
        "exact": exact_logdet,
        "mean_estimate": float(estimates.mean()),
        "mean_reported_error": float(errors.mean()),
        "rms_pull": float(np.sqrt(np.mean(pulls**2))),
        "max_abs_pull": float(np.max(np.abs(pulls))),
        "scatter_over_reported_error": float(np.std(estimates, ddof=1) / errors.mean())
        if len(estimates) > 1
        else None,
        "first_s": round(stages[0].seconds, 3),
        "repeat_s": round(statistics.median(s.seconds for s in stages[1:]), 3)
        if len(stages) > 1
        else None,
        "repeat_peak_mb": round(max(s.peak_mb for s in stages[1:]), 1) if len(stages) > 1 else None,
    }
    return row


def child_devices(options) -> dict:
    """The dense and the sparse Fisher matrix over ``jax.devices()`` (one or several CPU
    devices), each compared with the one-device matrix saved by the first child."""
    import jax
    import numpy as np

    import zdx_batching as zb

    problem = _problem(options)
    jax.block_until_ready(problem.data)
    declare = {"log_response": "elementwise"}
    calls = {
        "dense": lambda: zb.fisher(problem.scaled_model, problem.truth)[0],
        "sparse": lambda: zb.sparse_fisher(
            problem.scaled_model, problem.truth, declare=declare
        ).todense(),
    }
    row = {"devices": len(jax.devices())}
    for name, call in calls.items():
        result, timing = _timed_calls(
            lambda call=call: jax.block_until_ready(call()), options.repeats
        )
        row[name] = timing
        result = np.asarray(result)
        np.save(pathlib.Path(options.folder) / f"{name}-devices-{row['devices']}.npy", result)
        one = pathlib.Path(options.folder) / f"{name}-devices-1.npy"
        if row["devices"] > 1 and one.exists():
            reference = np.load(one)
            timing["max_relative_difference_to_one_device"] = float(
                np.abs(result - reference).max() / np.abs(reference).max()
            )
            timing["bitwise_equal_to_one_device"] = bool(np.array_equal(result, reference))
    return row


def child(options) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    sys.path.insert(0, str(HERE))
    if options.child == "matrix_free":
        out = child_matrix_free(options)
    elif options.child == "devices":
        out = child_devices(options)
    else:
        out = child_curvature(options.child, options)
    from scale_matrix_free import _status_mb

    out["process_rss_mb_at_end"] = _status_mb("VmRSS")
    return out


def _run_child(kind: str, npix: int, options, folder: str, extra_flags: str = "") -> dict:
    env = os.environ.copy()
    flags = env.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" not in flags:
        flags = f"{flags} {SAFE_XLA_FLAG}"
    env["XLA_FLAGS"] = f"{flags} {extra_flags}".strip()
    command = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--npix",
        str(npix),
        "--folder",
        folder,
    ]
    for name in PASSED:
        command += [f"--{name}", str(getattr(options, name))]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if done.returncode != 0 or not line:
        print(done.stdout[-2000:], done.stderr[-4000:], file=sys.stderr)
        return {"kind": kind, "npix": npix, "failed": f"exit {done.returncode}"}
    row = {"kind": kind, "npix": npix, "n": npix**2 + NGLOBAL}
    row.update(json.loads(line[0][len("RESULT ") :]))
    row["process_seconds"] = round(time.perf_counter() - start, 1)
    return row


def _mb(value) -> str:
    return "" if value is None else f"{value:,.0f} MB"


def tables(report: dict) -> str:
    """Markdown tables of a results file: the matrices, then the matrix-free estimates."""
    rows = report["rows"]
    lines = [
        "| n (npix) | matrix | first call | repeated call | peak above baseline, first / repeated "
        "| colours | max rel. difference to dense |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["kind"] == "matrix_free" or row["kind"] == "devices":
            continue
        label = f"{row['n']:,} ({row['npix']})"
        if "skipped" in row:
            lines.append(
                f"| {label} | {row['kind']} | not run: the matrix alone would be "
                f"{row['dense_matrix_gb']} GB | | | | |"
            )
            continue
        if "failed" in row:
            lines.append(f"| {label} | {row['kind']} | failed ({row['failed']}) | | | | |")
            continue
        difference = row.get("max_relative_difference_to_dense")
        lines.append(
            f"| {label} | {row['kind']} | {row['first_s']:.1f} s | {row['repeat_s']:.3g} s | "
            f"{_mb(row['first_peak_mb'])} / {_mb(row['repeat_peak_mb'])} | "
            f"{row.get('ncolours', '')} | {'' if difference is None else f'{difference:.1e}'} |"
        )
    free = [row for row in rows if row["kind"] == "matrix_free" and "failed" not in row]
    if free:
        lines += [
            "",
            "| n (npix) | exact (SchurFactor, with the sparse Fisher) | CG variances: max rel. "
            "error (globals / responses), steps, repeated call | log det: mean pull, RMS pull "
            "over keys, scatter / reported error, repeated call |",
            "|---|---|---|---|",
        ]
        for row in free:
            exact, cg, ld = row["exact"], row["marginal_variances"], row["log_determinant"]
            mean_pull = (ld["mean_estimate"] - ld["exact"]) / ld["mean_reported_error"]
            scatter = ld["scatter_over_reported_error"]
            lines.append(
                f"| {row['n']:,} ({row['npix']}) | {exact['seconds']:.1f} s, "
                f"{_mb(exact['peak_mb'])} | {cg['max_relative_error_globals']:.1e} / "
                f"{cg['max_relative_error_responses']:.1e}, {cg['cg_steps_max']}, "
                f"{cg['repeat_s']:.2f} s | {mean_pull:+.2f}, {ld['rms_pull']:.2f} "
                f"({ld['seeds']} keys), {'' if scatter is None else f'{scatter:.2f}'}, "
                f"{ld['repeat_s']:.2f} s |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npix", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--dense-max", type=int, default=4200, help="largest n run dense")
    parser.add_argument("--pupil", type=int, default=32, help="pupil samples across")
    parser.add_argument("--dithers", type=int, default=2, help="pointings on a side")
    parser.add_argument("--wavelengths", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="repeated calls (median)")
    parser.add_argument("--responses", type=int, default=10, help="responses whose variance")
    parser.add_argument("--rtol", type=float, default=1e-9, help="CG tolerance")
    parser.add_argument("--seeds", type=int, default=3, help="log-determinant keys")
    parser.add_argument("--probes", type=int, default=32)
    parser.add_argument("--order", type=int, default=30)
    parser.add_argument("--devices", action="store_true", help="the devices measurement")
    parser.add_argument("--out", help="the JSON file (default results/<machine>/...)")
    parser.add_argument("--table", help="print the markdown tables of a results file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    options = parser.parse_args()
    load_at_start = os.getloadavg()
    if options.child:
        print("RESULT " + json.dumps(child(options)), flush=True)
        return
    if options.table:
        print(tables(json.loads(pathlib.Path(options.table).read_text())))
        return
    sys.path.insert(0, str(HERE))
    from machine import machine_name

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for npix in options.npix:
            n = npix**2 + NGLOBAL
            if options.devices:
                for count in (1, 2):
                    flag = f"--xla_force_host_platform_device_count={count}"
                    row = _run_child("devices", npix, options, folder, flag)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                continue
            # Dense first, so that the sparse rows can be compared with it.
            for kind in sorted(options.kinds, key=lambda k: not k.startswith("dense")):
                if kind.startswith("dense") and n > options.dense_max:
                    row = {
                        "kind": kind,
                        "npix": npix,
                        "n": n,
                        "skipped": f"n > {options.dense_max}",
                        "dense_matrix_gb": round(n * n * 8 / 1e9, 2),
                    }
                else:
                    row = _run_child(kind, npix, options, folder)
                rows.append(row)
                print(json.dumps(row), flush=True)
    import jax

    report = {
        "machine": machine_name(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_average_at_start": load_at_start,
        "load_average_at_end": os.getloadavg(),
        "settings": {
            "pupil_npix": options.pupil,
            "ndither": options.dithers,
            "nwavels": options.wavelengths,
            "repeats": options.repeats,
        },
        "rows": rows,
    }
    if options.out:
        path = pathlib.Path(options.out)
    else:
        folder = HERE / "results" / machine_name()
        folder.mkdir(parents=True, exist_ok=True)
        stem = "scale_devices" if options.devices else "scale_sweep"
        path = folder / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
