"""The commands resume from their --out folder: what a run recorded there is read back, not
computed again, and the summary equals that of a run never stopped (the seconds aside); a
folder of other settings is refused; SIGTERM stops a run cleanly, saying how to resume;
processes sharing a folder give the summary of one process."""

import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

import zdx_base
from zdx_examples import _cli
from zdx_examples._run_folder import RunFolder, RunFolderError

TIMING = ("seconds", "total_seconds", "seconds_per_fit_median", "fit_seconds")


def _without_timing(summary):
    """``summary`` without its wall-clock fields (at every depth)."""
    if isinstance(summary, dict):
        return {k: _without_timing(v) for k, v in summary.items() if k not in TIMING}
    if isinstance(summary, list):
        return [_without_timing(v) for v in summary]
    return summary


def _interrupt_after(monkeypatch, records, how):
    """Make ``RunFolder.save`` call ``how()`` once ``records`` records are written."""
    original = RunFolder.save
    written = []

    def save(self, name, arrays, info=None):
        original(self, name, arrays, info)
        written.append(name)
        if len(written) == records:
            how()

    monkeypatch.setattr(RunFolder, "save", save)
    return written


class _Killed(Exception):
    """Stands for SIGKILL right after a record was written."""


def _kill():
    raise _Killed


# ---------------------------------------------------------------- the folder itself


def test_a_folder_of_other_settings_is_refused_naming_each_setting_that_differs(tmp_path):
    RunFolder("calibrate optics", tmp_path, {"n": 3, "seed": 0, "npix": 16})
    with pytest.raises(RunFolderError) as error:
        RunFolder("calibrate optics", tmp_path, {"n": 3, "seed": 1, "npix": 32})
    message = str(error.value)
    assert "npix: 16 there, 32 now" in message and "seed: 0 there, 1 now" in message
    assert "n:" not in message and "--restart" in message
    with pytest.raises(RunFolderError, match="another command"):
        RunFolder("calibrate gaussians", tmp_path, {"n": 3, "seed": 0, "npix": 16})


def test_records_read_back_bit_for_bit_and_restart_discards_them(tmp_path):
    folder = RunFolder("demo", tmp_path, {"n": 2})
    values = np.random.default_rng(0).standard_normal((3, 4))
    folder.save("block_00000", {"fits": values, "count": np.arange(3)}, {"seconds": 1.5})
    arrays, info = RunFolder("demo", tmp_path, {"n": 2}).load("block_00000")
    assert arrays["fits"].tobytes() == values.tobytes() and arrays["fits"].dtype == values.dtype
    np.testing.assert_array_equal(arrays["count"], np.arange(3))
    assert info == {"seconds": 1.5}
    assert folder.load("block_00001") is None
    again = RunFolder("demo", tmp_path, {"n": 5}, restart=True)
    assert again.load("block_00000") is None


def test_a_damaged_or_foreign_record_is_refused_and_left_as_it_was(tmp_path):
    folder = RunFolder("demo", tmp_path / "a", {"n": 2})
    folder.save("block_00000", {"fits": np.ones(50)})
    path = folder.path("block_00000")
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(RunFolderError, match="damaged"):
        folder.load("block_00000")
    assert path.read_bytes() == bytes(data)
    other = RunFolder("demo", tmp_path / "b", {"n": 3})
    other.save("block_00000", {"fits": np.ones(50)})
    path.write_bytes(other.path("block_00000").read_bytes())
    with pytest.raises(RunFolderError, match="n: 3 there, 2 now"):
        folder.load("block_00000")


def test_processes_deal_the_work_out_and_process_0_gathers_it(tmp_path):
    settings = {"n": 7}
    folders = [
        RunFolder("demo", tmp_path, settings, process_id=i, num_processes=3) for i in range(3)
    ]
    shares = [folder.share(7) for folder in folders]
    assert sorted(k for share in shares for k in share) == list(range(7))
    names = [f"piece_{k}" for k in range(7)]
    for folder, share in zip(folders, shares):
        for k in share:
            folder.save(names[k], {"k": np.array(k)})
    assert folders[1].gather(names) is None
    assert [int(a["k"]) for a, _ in folders[0].gather(names)] == list(range(7))
    assert folders[1].left_to_process_0(len(shares[1]))["recorded"] == len(shares[1])
    with pytest.raises(ValueError, match="process_id must be below num_processes=2"):
        RunFolder("demo", tmp_path, settings, process_id=2, num_processes=2)
    with pytest.raises(ValueError, match="--restart"):
        RunFolder("demo", tmp_path, settings, restart=True, num_processes=2)


def test_sigterm_lets_the_piece_finish_then_stops_saying_how_to_resume(tmp_path, capsys):
    folder = RunFolder("calibrate optics", tmp_path, {"n": 3})
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(zdx_base.CheckpointInterrupted) as stop:
        with folder.interruptible():
            os.kill(os.getpid(), signal.SIGTERM)
            folder.save("block_00000", {"fits": np.zeros(2)})  # the piece still finishes
            folder.stop_if_asked("1 of 2 blocks")
    assert stop.value.code == 128 + signal.SIGTERM
    assert "stopped by SIGTERM after 1 of 2 blocks" in stop.value.message
    assert f"--out {tmp_path}" in stop.value.message
    assert "Run the same command again" in capsys.readouterr().err
    assert folder.load("block_00000") is not None
    assert signal.getsignal(signal.SIGTERM) is before


# --------------------------------------------------------------- the commands

SBC = ["calibrate", "gaussians", "--n", "3", "--draws", "9", "--num-live", "30"]
SBC += ["--samplers", "nested_sampling", "--quiet"]


@pytest.fixture(scope="module")
def sbc_whole(tmp_path_factory):
    out = tmp_path_factory.mktemp("sbc-whole")
    assert _cli.main([*SBC, "--out", str(out)]) == 0
    return out


def test_calibrate_gaussians_killed_after_a_replication_resumes_to_the_same_summary(
    sbc_whole, tmp_path, monkeypatch
):
    written = _interrupt_after(monkeypatch, 1, _kill)
    with pytest.raises(_Killed):
        _cli.main([*SBC, "--out", str(tmp_path)])
    monkeypatch.undo()
    assert written == ["replication_000000"]
    resumed_writes = _interrupt_after(monkeypatch, 99, _kill)
    assert _cli.main([*SBC, "--out", str(tmp_path)]) == 0
    assert resumed_writes == ["replication_000001", "replication_000002"]  # not the first again
    whole = json.loads((sbc_whole / "summary.json").read_text())
    resumed = json.loads((tmp_path / "summary.json").read_text())
    assert _without_timing(resumed) == _without_timing(whole)
    assert _cli.main([*SBC, "--seed", "1", "--out", str(tmp_path)]) == 2


# the sizes of test_calibrate.py's run (the same compiled programs): two blocks of 3
OPTICS = ["calibrate", "optics", "--n", "4", "--npix", "16", "--psf-npix", "8"]
OPTICS += ["--ngd-steps", "20", "--block-size", "3", "--quiet"]


def _report_without_timing(folder):
    text = (folder / "report.md").read_text()
    return re.sub(r"seconds per stage: .*", "", text)


@pytest.mark.slow
def test_calibrate_optics_stopped_by_sigterm_resumes_to_the_same_summary_and_report(
    tmp_path, monkeypatch, capsys
):
    whole = tmp_path / "whole"
    assert _cli.main([*OPTICS, "--out", str(whole)]) == 0
    stopped = tmp_path / "stopped"
    _interrupt_after(monkeypatch, 1, lambda: os.kill(os.getpid(), signal.SIGTERM))
    assert _cli.main([*OPTICS, "--out", str(stopped)]) == 128 + signal.SIGTERM
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert "stopped by SIGTERM after 1 of the 2 blocks" in err
    assert f"Run the same command again with --out {stopped}" in err
    assert not (stopped / "summary.json").exists()
    assert _cli.main([*OPTICS, "--out", str(stopped)]) == 0
    summary = json.loads((stopped / "summary.json").read_text())
    assert _without_timing(summary) == _without_timing(
        json.loads((whole / "summary.json").read_text())
    )
    assert _report_without_timing(stopped) == _report_without_timing(whole)


@pytest.mark.slow
def test_optics_fit_reads_back_its_finished_stages(tmp_path, monkeypatch):
    argv = ["optics-fit", "--npix", "16", "--psf-npix", "8", "--n-zernike", "3"]
    argv += ["--filters", "2", "--n-images", "20", "--ngd-steps", "6", "--max-steps", "10"]
    argv += ["--nuts-warmup", "10", "--nuts-samples", "8", "--quiet"]
    whole = tmp_path / "whole"
    assert _cli.main([*argv, "--out", str(whole)]) == 0
    stopped = tmp_path / "stopped"
    written = _interrupt_after(monkeypatch, 3, _kill)  # choose_start, fisher, natural_gradient
    with pytest.raises(_Killed):
        _cli.main([*argv, "--out", str(stopped)])
    monkeypatch.undo()
    assert written == ["choose_start", "fisher", "natural_gradient"]
    again = _interrupt_after(monkeypatch, 99, _kill)
    assert _cli.main([*argv, "--out", str(stopped)]) == 0
    assert again == ["lbfgs", "hessian", "nuts"]
    summary = json.loads((stopped / "summary.json").read_text())
    assert _without_timing(summary) == _without_timing(
        json.loads((whole / "summary.json").read_text())
    )


@pytest.mark.slow
def test_two_processes_share_the_replications_and_give_the_one_process_summary(sbc_whole, tmp_path):
    command = [sys.executable, "-m", "zdx_examples", *SBC, "--out", str(tmp_path)]
    workers = [
        subprocess.Popen(
            [*command, "--num-processes", "2", "--process-id", str(rank)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    try:
        outputs = [worker.communicate(timeout=400) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
    assert "recorded 1" in outputs[1][0]  # process 1 sampled replication 1 only
    one = json.loads((sbc_whole / "summary.json").read_text())
    two = json.loads((tmp_path / "summary.json").read_text())
    assert _without_timing(two) == _without_timing(one)


@pytest.mark.slow
def test_detector_coverage_killed_after_a_data_set_resumes_to_the_same_summary(
    tmp_path, monkeypatch
):
    from zdx_examples._calibrate_detector import detector_coverage

    small = {"npix": 8, "pupil_npix": 32, "ndither": 2, "nwavels": 1, "max_steps": 10}
    whole = detector_coverage(datasets=3, progress=False, **small)  # no folder at all
    written = _interrupt_after(monkeypatch, 1, _kill)
    with pytest.raises(_Killed):
        detector_coverage(datasets=3, out=tmp_path, progress=False, **small)
    monkeypatch.undo()
    assert written == ["dataset_000000"]
    resumed = detector_coverage(datasets=3, out=tmp_path, progress=False, **small)
    assert _without_timing(resumed) == _without_timing(whole)
    assert json.loads((tmp_path / "summary.json").read_text())["pulls"] == 3 * 64


@pytest.mark.slow
def test_calibrate_detector_reads_back_its_fits(tmp_path, monkeypatch):
    from zdx_examples._calibrate_detector import calibrate_detector

    small = {"npix": 8, "pupil_npix": 32, "ndither": 2, "nwavels": 1}
    whole = calibrate_detector(out=tmp_path / "whole", progress=False, **small)
    written = _interrupt_after(monkeypatch, 1, _kill)  # killed before the reference fit
    with pytest.raises(_Killed):
        calibrate_detector(out=tmp_path / "stopped", progress=False, **small)
    monkeypatch.undo()
    assert written == ["fit"]
    again = _interrupt_after(monkeypatch, 99, _kill)
    resumed = calibrate_detector(out=tmp_path / "stopped", progress=False, **small)
    assert again == ["reference"]
    untimed = [*TIMING, "peak_memory_mb", "seconds_history"]
    assert {k: v for k, v in resumed.items() if k not in untimed} == {
        k: v for k, v in whole.items() if k not in untimed
    }
