"""Peak memory of one case, measured in a fresh process.

    python benchmarks/measure.py PROBLEM CASE

builds the problem, resets the process's peak resident set size (Linux: writing ``5`` to
``/proc/self/clear_refs``), makes the first call and one repeated call, and prints one
line of JSON:

- ``rss_baseline_mb``: resident memory after importing and building the problem;
- ``rss_peak_mb``: the peak resident memory above that baseline, over the first call
  (tracing and compiling included) and the repeat;
- ``rss_repeat_peak_mb``: the peak above the memory resident after the first call, over the
  repeat alone (memory the allocator kept from the first call is not counted again);
- ``device_peak_mb``: on an accelerator, JAX's ``peak_bytes_in_use`` above the bytes in use
  at the baseline (``None`` on CPU, where JAX does not report it);
- ``first_call_fresh_s``: the first call in this fresh process.

Without ``clear_refs`` (not Linux) the peak is ``ru_maxrss`` minus its value at the
baseline, which cannot see a peak lower than the build's.

    python benchmarks/measure.py --interleaved PROBLEM CASE CASE... [--repeats N]

times repeated calls instead: every case once (first calls and one repeat untimed), then
round after round one call of each case in turn, and prints one line of JSON with each
case's fastest and median call over the rounds in seconds, their ratios to the first
case's and the microseconds by which each median exceeds the first case's
(``median_added_us``). Each result is checked against ``jax.hessian``'s when that is one
of the cases (``disagree``: the cases that differ, with why; the exit status is then 1).
Cases timed in the same rounds share the machine's load, so on a busy machine their ratio
is what to compare.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax

jax.config.update("jax_enable_x64", True)

import cases  # noqa: E402
import problems  # noqa: E402

_KB = 1024.0
_MB = 1024.0 * 1024.0


def _status_kb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as stream:
            for line in stream:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as stream:
            stream.write("5")
        return True
    except OSError:
        return False


def _rss_now_mb() -> float:
    rss = _status_kb("VmRSS")
    if rss is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / _KB
    return rss / _KB


def _rss_peak_mb() -> float:
    hwm = _status_kb("VmHWM")
    if hwm is None:  # ru_maxrss is in kilobytes on Linux, bytes on macOS
        scale = _MB if sys.platform == "darwin" else _KB
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale
    return hwm / _KB


def _device_bytes() -> tuple[int, int] | None:
    stats = jax.devices()[0].memory_stats()
    if not stats or "peak_bytes_in_use" not in stats:
        return None
    return int(stats["bytes_in_use"]), int(stats["peak_bytes_in_use"])


def measure(problem_id: str, case_id: str, repeats: int = 1) -> dict:
    """Measure one case; see the module's docstring for what comes back."""
    problem = problems.make_problem(problem_id)
    case = cases.parse_case_id(case_id)
    run = cases.make_runner(case, problem)
    device_before = _device_bytes()
    reset = _reset_peak()
    baseline = _rss_now_mb() if reset else _rss_peak_mb()
    start = time.perf_counter()
    run()
    first = time.perf_counter() - start
    peak_first = _rss_peak_mb()
    after_first = _rss_now_mb()
    repeat_reset = reset and _reset_peak()
    for _ in range(repeats):
        run()
    peak_repeats = _rss_peak_mb()
    device_peak = None
    device_after = _device_bytes()
    if device_before is not None and device_after is not None:
        device_peak = max(device_after[1] - device_before[0], 0) / _MB
    return {
        "rss_baseline_mb": round(baseline, 2),
        "rss_peak_mb": round(max(peak_first, peak_repeats) - baseline, 2),
        "rss_repeat_peak_mb": (round(peak_repeats - after_first, 2) if repeat_reset else None),
        "device_peak_mb": None if device_peak is None else round(device_peak, 2),
        "first_call_fresh_s": round(first, 4),
        "peak_method": "VmHWM" if reset else "ru_maxrss",
    }


def interleaved(problem_id: str, case_ids: list[str], repeats: int = 200) -> dict:
    """The fastest and the median repeated call of each case, timed round after round."""
    problem = problems.make_problem(problem_id)
    runs = {c: cases.make_runner(cases.parse_case_id(c), problem) for c in case_ids}
    results = {}
    for case_id, run in runs.items():
        run()
        results[case_id] = run()
    reference = results.get("jax.hessian")
    disagree = {}
    for case_id, result in results.items():
        message = cases.reference_check(cases.parse_case_id(case_id), result, reference)
        if message is not None:
            disagree[case_id] = message
    times: dict = {case_id: [] for case_id in runs}
    for _ in range(repeats):
        for case_id, run in runs.items():
            start = time.perf_counter()
            run()
            times[case_id].append(time.perf_counter() - start)
    best = {case_id: min(values) for case_id, values in times.items()}
    median = {case_id: statistics.median(values) for case_id, values in times.items()}
    first = case_ids[0]
    return {
        "problem": problem_id,
        "repeats": repeats,
        "min_s": {case_id: float(f"{value:.4g}") for case_id, value in best.items()},
        "ratio": {case_id: round(value / best[first], 3) for case_id, value in best.items()},
        "median_s": {case_id: float(f"{value:.4g}") for case_id, value in median.items()},
        "median_ratio": {
            case_id: round(value / median[first], 3) for case_id, value in median.items()
        },
        "median_added_us": {
            case_id: round((value - median[first]) * 1e6, 1) for case_id, value in median.items()
        },
        "disagree": disagree,
    }


def main(argv: list[str]) -> int:
    if argv[:1] == ["--interleaved"] and len(argv) >= 4:
        repeats = 200
        if "--repeats" in argv:
            index = argv.index("--repeats")
            repeats = int(argv[index + 1])
            argv = argv[:index] + argv[index + 2 :]
        timed = interleaved(argv[1], argv[2:], repeats)
        print(json.dumps(timed), flush=True)
        return 1 if timed["disagree"] else 0
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(measure(argv[0], argv[1])), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
