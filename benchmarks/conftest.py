"""Settings of the benchmark suite: float64, the suite's options, the machine's description.

Options (see ``python benchmarks/run.py --help`` for the usual way to run):

- ``--bench-size quick|full``: which suite of ``cases.SUITES`` runs;
- ``--bench-memory all|key|none``: measure the peak memory of each case in a fresh process
  (``measure.py``), of the cases the README's targets use (``cases.KEY_CASES``), or of none;
- ``--bench-budget SECONDS``: about how long the repeated calls of one case are timed
  (at least 3 and at most 20 rounds; 20 to 500 for one evaluation of ``f``);
- ``--bench-problems ID,ID``: only these problems of the suite.

No persistent compilation cache is used: the first call of each case really compiles.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax

jax.config.update("jax_enable_x64", True)

import cases  # noqa: E402
import machine  # noqa: E402


def pytest_addoption(parser):
    group = parser.getgroup("zodiax benchmarks")
    group.addoption("--bench-size", default="quick", choices=sorted(cases.SUITES))
    group.addoption("--bench-memory", default="all", choices=["all", "key", "none"])
    group.addoption("--bench-budget", default=None, type=float)
    group.addoption("--bench-problems", default=None, help="comma-separated problem ids")


def pytest_generate_tests(metafunc):
    if "bench_case" not in metafunc.fixturenames:
        return
    size = metafunc.config.getoption("--bench-size")
    chosen = metafunc.config.getoption("--bench-problems")
    chosen = None if chosen is None else set(chosen.split(","))
    here = cases.available_libraries()
    params, ids = [], []
    for entry in cases.SUITES[size]:
        if chosen is not None and entry.problem not in chosen:
            continue
        for case in cases.cases_for(entry):
            if case.library in here:
                params.append((entry.problem, case.id))
                ids.append(f"{entry.problem}/{case.id}")
    metafunc.parametrize("bench_case", params, ids=ids)


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["zodiax_bench"] = {
        **machine.describe(),
        "environment": cases.environment_label(),
        "versions": cases.versions(),
        "suite": config.getoption("--bench-size"),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
