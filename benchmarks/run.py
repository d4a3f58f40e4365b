"""Run the benchmark suite and store its pytest-benchmark JSON under ``benchmarks/results``.

    python benchmarks/run.py [--size quick|full] [--memory all|key|none] [--budget SECONDS]
                             [--problems ID,ID] [--with-zodiax05] [PYTEST ARGS...]

The results go to ``benchmarks/results/<machine>/<environment>_<size>_<time>.json``, where
``<machine>`` is the GPU's name or the CPU's model and core count (``machine.py``) and
``<environment>`` is ``zdx`` (our packages) or ``zodiax05`` (zodiax 0.5.0), whichever this
Python has.

``--with-zodiax05`` also runs the same problems in the ``bench-zodiax05`` hatch environment
(``hatch run bench-zodiax05:...``), **problem by problem, alternating** with this
environment, so that the numbers compared in the report were taken minutes apart, under the
same load of the machine; the parts are then joined into one file per environment. Any other
arguments go to pytest (``-x`` to stop at the first failure).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def pytest_command(
    options: argparse.Namespace, output: str, problems: list[str] | None, pytest_args: list[str]
) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        os.path.join(HERE, "pytest.ini"),
        "--rootdir",
        HERE,
        os.path.join(HERE, "test_hessians.py"),
        "--benchmark-only",
        f"--benchmark-json={output}",
        "--benchmark-sort=name",
        "--benchmark-columns=min,median,max,rounds",
        f"--bench-size={options.size}",
        f"--bench-memory={options.memory}",
        *pytest_args,
    ]
    if options.budget is not None:
        command.append(f"--bench-budget={options.budget}")
    if problems:
        command.append(f"--bench-problems={','.join(problems)}")
    return command


def find_hatch() -> str | None:
    hatch = shutil.which("hatch")
    launcher = os.environ.get("_", "")  # the shell sets it: hatch itself under `hatch run`
    if hatch is None and os.path.basename(launcher) == "hatch":
        hatch = launcher
    return hatch


def run_zodiax05(
    hatch: str,
    options: argparse.Namespace,
    output: str,
    problems: list[str],
    pytest_args: list[str],
) -> int:
    """This script, for ``problems``, in the bench-zodiax05 environment, writing ``output``."""
    forwarded = [
        f"--size={options.size}",
        f"--memory={options.memory}",
        f"--output={output}",
        f"--problems={','.join(problems)}",
        *pytest_args,
    ]
    if options.budget is not None:
        forwarded.append(f"--budget={options.budget}")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HATCH_ENV_")}
    environment.pop("VIRTUAL_ENV", None)
    return subprocess.call(
        [hatch, "run", "bench-zodiax05:python", os.path.abspath(__file__), *forwarded],
        env=environment,
        cwd=ROOT,
    )


def join_parts(parts: list[str], output: str) -> bool:
    """Join pytest-benchmark JSON files into one (machine info of the first)."""
    joined = None
    for part in parts:
        if not os.path.exists(part):
            continue
        with open(part) as stream:
            data = json.load(stream)
        if joined is None:
            joined = data
        else:
            joined["benchmarks"].extend(data["benchmarks"])
    if joined is None:
        return False
    with open(output, "w") as stream:
        json.dump(joined, stream, indent=4)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=["quick", "full"], default="quick")
    parser.add_argument(
        "--memory",
        choices=["all", "key", "none"],
        default=None,
        help=(
            "measure the peak memory of every case in a fresh process (all, the default of "
            "--size full), of the cases the README's targets use (key, the default of "
            "--size quick), or of none"
        ),
    )
    parser.add_argument("--budget", type=float, default=None, help="seconds of repeats per case")
    parser.add_argument("--problems", default=None, help="comma-separated problem ids")
    parser.add_argument("--results", default=os.path.join(HERE, "results"))
    parser.add_argument("--output", default=None, help="write the JSON here instead")
    parser.add_argument(
        "--with-zodiax05",
        action="store_true",
        help="alternate, problem by problem, with the bench-zodiax05 hatch environment",
    )
    options, pytest_args = parser.parse_known_args(argv)
    if options.memory is None:
        options.memory = "all" if options.size == "full" else "key"

    import cases
    import machine

    label = cases.environment_label()
    name = machine.machine_name()
    folder = os.path.join(options.results, name)
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    output = options.output or os.path.join(folder, f"{label}_{options.size}_{stamp}.json")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    problems = options.problems.split(",") if options.problems else None

    found = cases.versions()
    print(f"Python {found.pop('python')}, " + ", ".join(f"{k} {v}" for k, v in found.items()))
    if not options.with_zodiax05:
        print(f"{label} on {name}: results to {os.path.relpath(output)}", flush=True)
        code = subprocess.call(pytest_command(options, output, problems, pytest_args))
        if os.path.exists(output):
            print(f"Wrote {os.path.relpath(output)}", flush=True)
        return code

    hatch = find_hatch()
    if hatch is None:
        print("hatch not found: cannot run the bench-zodiax05 environment.", flush=True)
        return 1
    other = os.path.join(folder, f"zodiax05_{options.size}_{stamp}.json")
    problems = problems or [entry.problem for entry in cases.SUITES[options.size]]
    code = 0
    with tempfile.TemporaryDirectory() as scratch:
        ours_parts, their_parts = [], []
        for index, problem in enumerate(problems):
            print(f"== {problem}: {label}, then zodiax 0.5.0", flush=True)
            part = os.path.join(scratch, f"ours_{index}.json")
            ours_parts.append(part)
            code = subprocess.call(pytest_command(options, part, [problem], pytest_args)) or code
            part = os.path.join(scratch, f"theirs_{index}.json")
            their_parts.append(part)
            code = run_zodiax05(hatch, options, part, [problem], pytest_args) or code
        for parts, path in ((ours_parts, output), (their_parts, other)):
            if join_parts(parts, path):
                print(f"Wrote {os.path.relpath(path)}", flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
