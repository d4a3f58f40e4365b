"""Time ``import zodiax`` here (our packages) and in zodiax 0.5.0's environment, side by side.

    hatch run bench:import-time [--rounds N] [--target 1.2]

Each round starts a fresh Python in each environment, alternating, and times ``import
zodiax`` inside it (interpreter start-up excluded); one untimed round first warms the file
cache. The 0.5.0 side is the ``bench-zodiax05`` hatch environment (created when missing).
Prints the medians, their ratio and how many modules each import loads, writes them to
``benchmarks/results/<machine>/import_time_<time>.json``, and exits with status 1 when the
median ratio is above ``--target``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

PROBE = (
    "import sys, time, json\n"
    "start = time.perf_counter()\n"
    "import zodiax\n"
    "seconds = time.perf_counter() - start\n"
    "heavy = sorted({m.split('.')[0] for m in sys.modules}\n"
    "               & {'numpyro', 'blackjax', 'arviz', 'pandas', 'xarray'})\n"
    "print(json.dumps({'seconds': seconds, 'modules': len(sys.modules), 'heavy': heavy,\n"
    "                  'version': zodiax.__version__}))\n"
)


def zodiax05_python(hatch: str) -> str:
    """The Python of the bench-zodiax05 hatch environment, created if needed."""
    subprocess.run(
        [hatch, "env", "create", "bench-zodiax05"], check=True, cwd=os.path.dirname(HERE)
    )
    found = subprocess.run(
        [hatch, "env", "find", "bench-zodiax05"],
        check=True,
        capture_output=True,
        text=True,
        cwd=os.path.dirname(HERE),
    )
    return os.path.join(found.stdout.strip(), "bin", "python")


def measure(python: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    done = subprocess.run(
        [python, "-c", PROBE], check=True, capture_output=True, text=True, env=env
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--target", type=float, default=1.2)
    parser.add_argument("--results", default=os.path.join(HERE, "results"))
    options = parser.parse_args(argv)

    import machine
    from run import find_hatch

    hatch = find_hatch()
    if hatch is None:
        print("hatch not found: cannot run the bench-zodiax05 environment.", flush=True)
        return 1
    sides = {"zdx": sys.executable, "zodiax05": zodiax05_python(hatch)}
    for python in sides.values():  # warm the file cache
        measure(python)
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    for _ in range(options.rounds):
        for side, python in sides.items():
            runs[side].append(measure(python))

    summary = {}
    for side, results in runs.items():
        summary[side] = {
            "median_seconds": statistics.median(r["seconds"] for r in results),
            "seconds": [r["seconds"] for r in results],
            "modules": results[-1]["modules"],
            "heavy_modules": results[-1]["heavy"],
            "zodiax_version": results[-1]["version"],
        }
    ratio = summary["zdx"]["median_seconds"] / summary["zodiax05"]["median_seconds"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    report = {"ratio": ratio, "target": options.target, "load_average": load, **summary}

    for side, s in summary.items():
        print(
            f"{side:9s} zodiax {s['zodiax_version']:8s} median {s['median_seconds']:.2f} s "
            f"over {options.rounds} rounds, {s['modules']} modules, heavy: {s['heavy_modules']}"
        )
    print(f"ratio {ratio:.2f} (target <= {options.target}); load average {load}")

    folder = os.path.join(options.results, machine.machine_name())
    os.makedirs(folder, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
    path = os.path.join(folder, f"import_time_{stamp}.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    print(f"Wrote {os.path.relpath(path)}")
    return 0 if ratio <= options.target else 1


if __name__ == "__main__":
    raise SystemExit(main())
