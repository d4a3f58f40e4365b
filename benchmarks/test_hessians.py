"""Batched Hessians, Fisher matrices and Hessian diagonals, timed side by side.

One benchmark per (problem, case) of the chosen suite (``cases.SUITES``), grouped by
problem. For each:

1. the first call is timed alone (tracing and compiling included): ``first_call_s``;
2. a second call estimates the cost of a repeated call and sets the number of rounds;
3. pytest-benchmark times the repeated calls (``stats``);
4. the result is checked against ``jax.hessian``'s (Hessians and diagonals to 1e-7 of the
   largest entry; Fisher matrices symmetric and finite);
5. for ``max_memory``, the number of blocks chosen is read from the progress bar of the
   same transform (an untimed call of its own);
6. the peak memory is measured in a fresh process (``measure.py``) and stored, with the
   first call there, in ``extra_info``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import cases
import problems
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

# The jax.hessian result of each problem, to check the others against.
_REFERENCE: dict[str, object] = {}

_DEFAULT_BUDGET = {"quick": 0.5, "full": 1.5}


def _rounds(estimate: float, budget: float, kind: str) -> int:
    # As many rounds as the budget allows, up to 500: a call of microseconds (one
    # evaluation of f, the Hessian of a cheap function) is timed over hundreds of rounds,
    # so that its fastest and median calls are not one scheduler's hiccup; an expensive
    # call gets at least 3 (20 for f, the unit of the "n evaluations" target).
    low = 20 if kind == "f" else 3
    return int(min(max(math.ceil(budget / max(estimate, 1e-6)), low), 500))


def _measure_memory(problem_id: str, case_id: str) -> dict:
    command = [sys.executable, os.path.join(HERE, "measure.py"), problem_id, case_id]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        return {"memory_error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_hessian(benchmark, bench_case, request):
    problem_id, case_id = bench_case
    config = request.config
    size = config.getoption("--bench-size")
    budget = config.getoption("--bench-budget") or _DEFAULT_BUDGET[size]
    problem = problems.make_problem(problem_id)
    case = cases.parse_case_id(case_id)
    run = cases.make_runner(case, problem)

    start = time.perf_counter()
    result = run()
    first = time.perf_counter() - start
    start = time.perf_counter()
    run()
    estimate = time.perf_counter() - start

    if case.kind == "hessian" and case.library == "jax":
        _REFERENCE[problem_id] = result
    problem_message = cases.reference_check(case, result, _REFERENCE.get(problem_id))
    # The blocks that max_memory chose (untimed: the search runs again, with a bar).
    blocks = cases.blocks_chosen(case, problem) if case.max_memory is not None else None

    benchmark.group = problem_id
    benchmark.extra_info.update(
        {
            "problem": problem_id,
            "family": problem.family,
            "n": problem.n,
            "description": problem.description,
            "case": case_id,
            "library": case.library,
            "kind": case.kind,
            "nbatches": case.nbatches,
            "max_memory": case.max_memory,
            "blocks": blocks,
            "first_call_s": round(first, 4),
            "environment": cases.environment_label(),
        }
    )
    benchmark.pedantic(
        run, rounds=_rounds(estimate, budget, case.kind), iterations=1, warmup_rounds=0
    )

    memory = config.getoption("--bench-memory")
    # f needs no memory figure, and jax.hessian's is the same code in every environment.
    same_everywhere = case.library == "jax" and cases.environment_label() != "zdx"
    wanted = memory == "all" or (memory == "key" and case_id in cases.KEY_CASES)
    if case.kind != "f" and not same_everywhere and wanted:
        benchmark.extra_info.update(_measure_memory(problem_id, case_id))
    if problem_message is not None:
        pytest.fail(problem_message)
