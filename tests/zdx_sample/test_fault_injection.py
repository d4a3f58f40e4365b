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


@pytest.mark.slow
@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_sigterm_and_sigint_stop_a_run_cleanly_and_it_resumes_to_the_same_result(signum, tmp_path):
    import signal

    import numpy as np

    script = runpy.run_path(str(SCRIPT))
    start, finish = script["_start"], script["_finish"]
    reference = tmp_path / "reference.npz"
    finish(start("variational", "-", reference))
    checkpoint, out = tmp_path / "vi.ckpt", tmp_path / "vi.npz"
    process = start("variational", str(checkpoint), out)
    assert process.stdout.readline().strip() == "started"
    assert process.stdout.readline().startswith("saved")
    process.send_signal(getattr(signal, signum))
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 128 + getattr(signal, signum)
    assert f"stopped by {signum} after" in stderr
    assert f"checkpoint={str(checkpoint)!r}" in stderr
    finish(start("variational", str(checkpoint), out))
    with np.load(out) as resumed, np.load(reference) as whole:
        for name in whole:
            np.testing.assert_array_equal(resumed[name], whole[name])
