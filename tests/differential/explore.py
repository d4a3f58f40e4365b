"""Many more random cases than the differential suite runs, through zodiax 0.5.0 and ours.

    hatch run python tests/differential/explore.py [--cases N] [--seed S] [--kinds K,K]

The suite (``test_against_zodiax05.py``) runs the same few hundred cases on every run, so
that its verdict does not change from one run to the next. This draws ``N`` new cases of
each kind for the seed ``S`` (the same ones again for the same seed), runs them on both
sides, and prints the differences that no deliberate difference explains, grouped by
operation and outcome, with the shortest case of each group (each kind in a process of
its own, its standard input empty for the debugger that ``debug_nan_check`` stops in). The
exit status is 1 when there are any. Once a found difference is understood, its case
belongs in the suite's ``EXPLICIT_CASES`` (fixed, or kept on purpose in ``DELIBERATE``
with the README's reason).
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent


def load_suite():
    """The differential suite's module: its strategies, runner and classification."""
    spec = importlib.util.spec_from_file_location(
        "differential_suite", HERE / "test_against_zodiax05.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def report(kind: str, triples: list, suite) -> int:
    """Print what ``triples`` of ``kind`` show; the number of unexplained differences."""
    unexplained, explained = suite.classify(triples)
    kept = {name: count for name, count in explained.items() if count}
    print(f"{kind}: {len(triples)} cases, {len(unexplained)} unexplained; on purpose: {kept}")
    groups = collections.defaultdict(list)
    for case, found in unexplained:
        groups[(case.get("op"), found[0])].append(case)
    for (op, first), cases in sorted(groups.items(), key=lambda item: -len(item[1])):
        shortest = min(cases, key=lambda case: len(repr(case)))
        print(f"  {len(cases)} x {op}: {first}\n    e.g. {shortest!r:.800}")
    return len(unexplained)


def main(argv: list[str] | None = None) -> int:
    suite = load_suite()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000, help="cases per kind (1000)")
    parser.add_argument("--seed", type=int, default=0, help="which cases (0)")
    parser.add_argument(
        "--kinds",
        default=",".join(sorted(suite.CASES_PER_KIND)),
        help="comma-separated kinds (all): " + ", ".join(sorted(suite.CASES_PER_KIND)),
    )
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    kinds = args.kinds.split(",")
    unknown = sorted(set(kinds) - set(suite.CASES_PER_KIND))
    if unknown:
        parser.error(f"--kinds: unknown {unknown}; the kinds are {sorted(suite.CASES_PER_KIND)}")
    if args.in_process and len(kinds) != 1:
        parser.error("--in-process runs one kind")
    if args.cases < 1:
        parser.error(f"--cases must be a positive integer, got {args.cases}")
    if not args.in_process:  # each kind in a process of its own: no state carries over
        failed = False
        for kind in kinds:
            command = [sys.executable, __file__, "--cases", str(args.cases)]
            command += ["--seed", str(args.seed), "--kinds", kind, "--in-process"]
            failed |= subprocess.run(command, stdin=subprocess.DEVNULL).returncode != 0
        return 1 if failed else 0
    cases = suite.generate(kinds[0], args.cases, args.seed)
    with tempfile.TemporaryDirectory() as folder:
        outcomes = suite.run_both(cases, pathlib.Path(folder))
    return 1 if report(kinds[0], outcomes[kinds[0]], suite) else 0


if __name__ == "__main__":
    raise SystemExit(main())
