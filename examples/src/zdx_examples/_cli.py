"""The ``zdx-examples`` command: run the tutorial's fits end to end and report on them.

``zdx-examples gaussians-fit`` fits the sum of Gaussians with BFGS and estimates the
uncertainties from the Hessian (sections 1 to 3 of the tutorial). ``zdx-examples
optics-fit`` simulates the hierarchical optics data, estimates a start from it, fits it
with the natural gradient and then the whitened L-BFGS, takes the error bars from the
Hessian and samples the posterior briefly with NUTS (sections 4 to 7); with ``--out DIR``
it writes the figures, ``summary.json`` and ``report.md`` there. Both print one
``name value`` line per figure. ``zdx-examples calibrate optics --n 200 --out DIR``
checks the coverage of the optics fit's Hessian error bars over many simulated data
sets, ``zdx-examples calibrate gaussians --n 100 --out DIR`` the samplers by
simulation-based calibration; each writes figures, ``summary.json`` and ``report.md``.
``python -m zdx_examples`` is the same command.

Given ``--out DIR``, the commands keep their progress in ``DIR/progress/`` and a run with the
same settings continues from it (``--restart`` starts over; ``_run_folder``); the
calibrations' data sets can be shared by processes (``--num-processes``, ``--process-id``).
SIGINT and SIGTERM stop a run cleanly, with a message saying how to resume.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import sys
from collections.abc import Sequence
from typing import Any

import jax

import zdx_base

from ._commands import calibrate, gaussians_fit, optics_fit
from ._filters import filter_set
from ._run_folder import RunFolderError, resume_message
from ._settings import (
    CALIBRATE_DETECTOR_DEFAULTS,
    DEFAULTS,
    OPTICS_CALIBRATION_DEFAULTS,
    SBC_DEFAULTS,
)

__all__ = ["DEFAULTS", "filter_set", "gaussians_fit", "main", "optics_fit"]


def _print_summary(summary: dict[str, Any]) -> None:
    for key, value in summary.items():
        if not isinstance(value, (list, dict)) and value is not None:
            print(f"{key} {value}")
    for stage, record in summary.get("stages", {}).items():
        print(f"stage {stage} " + " ".join(f"{k}={v}" for k, v in record.items()))
    if "parameters" in summary:
        print(f"{'parameter':<18}{'fit':>14}{'sigma':>11}{'truth':>14}{'pull':>8}")
        for row in summary["parameters"]:
            print(
                f"{row['name']:<18}{row['fit']:>14.7g}{row['sigma']:>11.3g}"
                f"{row['truth']:>14.7g}{row['pull']:>8.2f}"
            )
    if "params" in summary:
        for key, values in summary["params"].items():
            for i, (v, s) in enumerate(zip(values, summary["sigma"][key])):
                print(f"{key}[{i}] {v:.6g} +- {s:.3g}")


def _parsed(text: str, kind: type, name: str) -> Any:
    """``kind(text)``, or the ``argparse`` error saying it must be ``name``."""
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {name}, got {text!r}") from None


def _integer(minimum: int):
    def parse(text: str) -> int:
        value = _parsed(text, int, "an integer")
        if value < minimum:
            kind = "positive integer" if minimum == 1 else f"integer >= {minimum}"
            raise argparse.ArgumentTypeError(f"must be a {kind}, got {text}")
        return value

    return parse


def _rate(text: str) -> float:
    value = _parsed(text, float, "a number")
    if not 0 < value < 10:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 10), got {text}")
    return value


def _resume_options(parser: argparse.ArgumentParser) -> None:
    """``--restart``: the commands that keep their progress in ``--out``."""
    parser.add_argument(
        "--restart",
        action="store_true",
        help="discard the progress kept in --out and start over (without it, a run given "
        "the --out of an earlier run with the same settings continues it)",
    )


def _process_options(parser: argparse.ArgumentParser) -> None:
    """``--num-processes`` and ``--process-id``: processes sharing the data sets."""
    group = parser.add_argument_group(
        "several processes (e.g. the tasks of a SLURM job) sharing the data sets through --out"
    )
    group.add_argument(
        "--num-processes", type=_integer(1), default=1, help="how many processes (1)"
    )
    group.add_argument(
        "--process-id", type=_integer(0), default=0, help="this process's index, from 0 (0)"
    )


_OPTICS_OPTIONS = [
    ("npix", _integer(8), "pupil pixels across ({}; the tutorial's is 256)"),
    ("psf_npix", _integer(4), "detector pixels across ({})"),
    ("n_zernike", _integer(1), "Zernike terms from defocus on ({})"),
    ("filters", _integer(1), "number of filters ({})"),
    ("n_images", _integer(2), "exposures averaged per filter ({})"),
    ("seed", _integer(0), "seed of truth, noise and chains ({})"),
    ("ngd_steps", _integer(1), "natural-gradient steps ({})"),
    ("learning_rate", _rate, "natural-gradient rate ({})"),
    ("refresh_every", _integer(1), "steps between curvature updates of the natural gradient ({})"),
    ("max_steps", _integer(1), "most L-BFGS steps ({})"),
    ("nuts_warmup", _integer(0), "NUTS warm-up steps per chain ({})"),
    ("nuts_samples", _integer(0), "NUTS draws per chain, 0 to skip ({})"),
    ("nuts_chains", _integer(1), "NUTS chains ({})"),
    ("corner_params", _integer(0), "parameters in the corner plot, 0 for all ({})"),
]
"""``optics-fit``'s options after ``--out`` and ``--json``: setting, parser, help."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zdx-examples", description="Run the zodiax tutorial's example fits."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("gaussians-fit", help="BFGS fit of the sum of Gaussians")
    g.add_argument("--seed", type=_integer(0), default=0, help="seed of the noise (default 0)")
    g.add_argument("--out", help="folder for gaussians.png and summary.json")
    g.add_argument("--json", help="also write the summary to this JSON file")

    o = sub.add_parser(
        "optics-fit",
        help="natural gradient, whitened L-BFGS, Hessian and NUTS on the optics model",
        description="Simulate the hierarchical optics data and fit it end to end.",
    )
    o.add_argument("--out", help="folder for the figures, summary.json and report.md")
    o.add_argument("--json", help="also write the summary to this JSON file")
    for key, kind, text in _OPTICS_OPTIONS:
        o.add_argument(
            f"--{key.replace('_', '-')}",
            type=kind,
            default=DEFAULTS[key],
            help=text.format(DEFAULTS[key]),
        )
    o.add_argument("--quiet", action="store_true", help="no progress bars")
    _resume_options(o)
    _calibrate_parser(sub)
    _calibrate_detector_parser(sub)
    return parser


def _calibrate_detector_parser(sub: Any) -> None:
    """``calibrate-detector``: the pixel response and the optics, fitted at scale."""
    text = "fit a detector's pixel response with the optics (thousands of parameters)"
    parser = sub.add_parser("calibrate-detector", help=text, description=text)
    parser.add_argument("--out", help="folder for the figures, summary.json and report.md")
    parser.add_argument("--json", help="also write the summary to this JSON file")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    _resume_options(parser)
    _process_options(parser)
    parser.add_argument(
        "--datasets",
        type=_integer(1),
        default=1,
        help="fit this many simulated data sets and check the error bars' coverage (1)",
    )
    for key, value in CALIBRATE_DETECTOR_DEFAULTS.items():
        minimum = 0 if key == "seed" else 4 if key == "npix" else 1
        kind = float if isinstance(value, float) else _integer(minimum)
        parser.add_argument(
            f"--{key.replace('_', '-')}", type=kind, default=value, help=f"({value})"
        )


def _restart_with_safe_compiler(argv: Sequence[str] | None) -> None:
    """Run the command again in a process whose XLA compiles at optimisation level 1.

    XLA's CPU backend (jaxlib 0.10) can crash on the detector model's derivatives at its
    default level, and the flag must be set before JAX starts, which importing dLux does.
    Only the console command restarts (``argv`` None); a call from Python keeps going.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if argv is not None or "xla_backend_optimization_level" in flags:
        return
    from ._detector import SAFE_XLA_FLAG

    os.environ["XLA_FLAGS"] = (flags + " " + SAFE_XLA_FLAG).strip()
    os.execv(sys.executable, [sys.executable, "-m", "zdx_examples", *sys.argv[1:]])


def _calibrate_parser(sub: Any) -> None:
    """``calibrate optics`` and ``calibrate gaussians``: one option per setting."""
    c = sub.add_parser("calibrate", help="calibration of error bars and samplers")
    kinds = c.add_subparsers(dest="experiment", required=True)
    for name, defaults, text in [
        ("optics", OPTICS_CALIBRATION_DEFAULTS, "coverage of the optics fit's error bars"),
        ("gaussians", SBC_DEFAULTS, "simulation-based calibration of nuts, mams, nested_sampling"),
    ]:
        parser = kinds.add_parser(name, help=text, description=text)
        parser.add_argument("--out", help="folder for the figures, summary.json and report.md")
        parser.add_argument("--quiet", action="store_true", help="no progress bars")
        _resume_options(parser)
        _process_options(parser)
        for key, value in defaults.items():
            kind = _integer(0 if key == "seed" else 1) if isinstance(value, int) else type(value)
            parser.add_argument(
                f"--{key.replace('_', '-')}", type=kind, default=value, help=f"({value})"
            )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``zdx-examples``; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "calibrate-detector" and jax.default_backend() == "cpu":
        _restart_with_safe_compiler(argv)
    if args.command == "optics-fit" and 0 < args.nuts_samples < 4:
        parser.error(f"argument --nuts-samples: must be 0 or >= 4, got {args.nuts_samples}")
    import matplotlib

    matplotlib.use("Agg")
    jax.config.update("jax_enable_x64", True)
    try:
        summary = _run(args)
    except zdx_base.CheckpointInterrupted as stop:
        if not stop.message.startswith("zdx-examples"):  # said by a step inside, not by us
            command = (
                "calibrate " + args.experiment if args.command == "calibrate" else args.command
            )
            what = f"stopped by {signal.Signals(stop.signum).name}"
            print(resume_message(command, args.out, what), file=sys.stderr, flush=True)
        return int(stop.code)
    except RunFolderError as error:
        print(f"zdx-examples: error: {error}", file=sys.stderr)
        return 2
    _print_summary(summary)
    if getattr(args, "json", None):
        pathlib.Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    if getattr(args, "out", None) and "process_id" not in summary:
        print(f"report written to {args.out}", file=sys.stderr)
    return 0


def _run(args: argparse.Namespace) -> dict[str, Any]:
    """The summary of the command ``args`` names."""
    if args.command == "gaussians-fit":
        return gaussians_fit(seed=args.seed, out=args.out)
    if args.command == "calibrate":
        return calibrate(args)
    resume = {"out": args.out, "progress": not args.quiet, "restart": args.restart}
    if args.command == "calibrate-detector":
        from ._calibrate_detector import calibrate_detector, detector_coverage

        settings = {key: getattr(args, key) for key in CALIBRATE_DETECTOR_DEFAULTS}
        if args.datasets == 1 and args.num_processes == 1:
            return calibrate_detector(**resume, **settings)
        processes = {"process_id": args.process_id, "num_processes": args.num_processes}
        return detector_coverage(datasets=args.datasets, **resume, **processes, **settings)
    settings = {key: getattr(args, key) for key in DEFAULTS}
    return optics_fit(**resume, **settings)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
