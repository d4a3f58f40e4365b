"""Fault injection: a checkpointed run of each type killed with SIGKILL at a random moment
(a separate process), then resumed, ends with the numbers of a run never killed, and
redoes less than one checkpoint interval. The longer run (>= 20 kills) is
benchmarks/fault_injection.py, which these tests drive with one kill per run type."""

from __future__ import annotations

import pathlib
import runpy

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "fault_injection.py"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["nuts", "nested_sampling", "variational", "fit_many"])
def test_a_run_killed_at_a_random_moment_resumes_to_the_uninterrupted_result(kind, tmp_path):
    inject = runpy.run_path(str(SCRIPT))["inject"]
    (record,) = inject(kind, kills=1, seed=11, folder=tmp_path)
    assert record["equal"], record
    assert record["lost_at_most_one_interval"], record
