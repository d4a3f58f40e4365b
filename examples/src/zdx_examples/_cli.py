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
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optimistix as optx

import zdx_batching
import zdx_stats

from . import gaussians as gauss
from . import optics as ex
from ._plots import plot_gaussians
from ._report import summarise, write_report

DEFAULTS = {
    "npix": 128,
    "psf_npix": 32,
    "n_zernike": 7,
    "filters": 3,
    "n_images": 1000,
    "seed": 0,
    "ngd_steps": 100,
    "learning_rate": 0.1,
    "refresh_every": 5,
    "max_steps": 256,
    "nuts_warmup": 200,
    "nuts_samples": 300,
    "nuts_chains": 1,
    "corner_params": 6,
}
"""The settings of ``optics-fit`` when no option is given."""


def gaussians_fit(seed: int = 0, out: str | pathlib.Path | None = None) -> dict[str, Any]:
    """Fit the tutorial's sum of Gaussians; a summary of the fit.

    Parameters
    ----------
    seed : int
        Seed of the simulated noise (the tutorial's is 0).
    out : str or Path, optional
        A folder to write ``gaussians.png`` and ``summary.json`` into.

    Returns
    -------
    summary : dict
        ``initial_chi2r``, ``final_chi2r``, ``steps``, ``seconds``, the best-fit values
        ``params`` and their one-sigma uncertainties ``sigma`` (lists per parameter).
    """
    sim = gauss.simulate(seed=seed)
    args = (sim.model, sim.data, sim.error)
    params = gauss.init_params(sim.model)
    ddof = zdx_stats.ddof(params, sim.data)
    initial = zdx_stats.chi2r(sim.model(params), sim.data, sim.error, ddof)
    solver = optx.BestSoFarMinimiser(optx.BFGS(rtol=1e-12, atol=1e-12))
    start = time.perf_counter()
    sol = optx.minimise(gauss.loss_fn, solver, params, args)
    seconds = time.perf_counter() - start
    final = zdx_stats.chi2r(sim.model(sol.value), sim.data, sim.error, ddof)
    hessian, unflatten = zdx_batching.hessian(lambda p: gauss.neg_loglike_fn(p, args), sol.value)
    sigma = unflatten(jnp.sqrt(jnp.diag(jnp.linalg.inv(hessian))))
    summary = {
        "initial_chi2r": float(initial),
        "final_chi2r": float(final),
        "steps": int(sol.stats["num_steps"]),
        "seconds": round(seconds, 3),
        "params": {k: [float(v) for v in sol.value[k]] for k in sol.value},
        "sigma": {k: [float(v) for v in sigma[k]] for k in sigma},
    }
    if out is not None:
        out = _folder(out)
        curves = {
            "truth": sim.true_values,
            "start": sim.model(params),
            "best fit": sim.model(sol.value),
        }
        plot_gaussians(sim.model.xs, sim.data, float(sim.error), curves).savefig(
            out / "gaussians.png", dpi=110
        )
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def filter_set(n: int) -> dict[str, jax.Array]:
    """``n`` filters of five wavelengths each: the tutorial's blue, green and red (1.0 to
    1.6 microns) first, then 0.2-micron bands ``band4``, ``band5``... beyond.

    >>> list(filter_set(2)), list(filter_set(4))
    (['blue', 'green'], ['blue', 'green', 'red', 'band4'])
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"`filters` must be an integer >= 1, got {n!r}.")
    filters = dict(list(ex.default_filters().items())[:n])
    for i in range(3, n):
        filters[f"band{i + 1}"] = jnp.linspace(1.0 + 0.2 * i, 1.2 + 0.2 * i, 5)
    return filters


def _folder(out: str | pathlib.Path) -> pathlib.Path:
    out = pathlib.Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out must be a folder, but {str(out)!r} is a file.")
    out.mkdir(parents=True, exist_ok=True)
    return out


def optics_fit(
    out: str | pathlib.Path | None = None, progress: bool = True, **settings: Any
) -> dict[str, Any]:
    """Simulate the hierarchical optics data, fit it end to end and report; a summary.

    Parameters
    ----------
    out : str or Path, optional
        A folder to write the figures, ``summary.json`` and ``report.md`` into
        (:func:`zdx_examples.report.write_report`).
    progress : bool
        Show progress bars and a line per stage on standard error.
    **settings
        Any of :data:`DEFAULTS`: ``npix`` (pupil pixels), ``psf_npix`` (detector
        pixels), ``n_zernike``, ``filters`` (how many), ``n_images`` (exposures averaged),
        ``seed``, ``ngd_steps``, ``learning_rate``, ``refresh_every`` (of the natural
        gradient's Fisher matrix), ``max_steps`` (L-BFGS),
        ``nuts_warmup``, ``nuts_samples`` (0 skips NUTS), ``nuts_chains``,
        ``corner_params``.

    Returns
    -------
    summary : dict
        :func:`zdx_examples.report.summarise` of the fit, with a ``simulate`` stage first.

    Raises
    ------
    TypeError
        For an unknown setting.
    ValueError
        For a setting out of range.
    """
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise TypeError(f"optics_fit: unknown settings {unknown}; known: {sorted(DEFAULTS)}.")
    s = {**DEFAULTS, **settings}
    folder = None if out is None else _folder(out)
    clock = time.perf_counter()
    optics = ex.build_optics(
        filters=filter_set(s["filters"]),
        npix=s["npix"],
        psf_npixels=s["psf_npix"],
        n_zernike=s["n_zernike"],
    )
    sim = ex.simulate(optics, seed=s["seed"], n_images=s["n_images"])
    jax.block_until_ready(sim.observations)
    seconds = time.perf_counter() - clock
    if progress:
        print(f"[simulate] {s['n_images']} exposures in {seconds:.1f} s", file=sys.stderr)
    result = ex.fit(
        sim,
        ngd_steps=s["ngd_steps"],
        learning_rate=s["learning_rate"],
        refresh_every=s["refresh_every"],
        max_steps=s["max_steps"],
        nuts_warmup=s["nuts_warmup"],
        nuts_samples=s["nuts_samples"],
        nuts_chains=s["nuts_chains"],
        seed=s["seed"],
        progress=progress,
        stages={"simulate": {"steps": s["n_images"], "seconds": round(seconds, 3)}},
    )
    if folder is None:
        return summarise(result, s)
    write_report(result, folder, settings=s, corner_params=s["corner_params"])
    return json.loads((folder / "summary.json").read_text())


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


def _integer(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            kind = "positive integer" if minimum == 1 else f"integer >= {minimum}"
            raise argparse.ArgumentTypeError(f"must be a {kind}, got {text}")
        return value

    return parse


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not 0 < value < 10:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 10), got {text}")
    return value


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
    d = DEFAULTS
    o.add_argument("--out", help="folder for the figures, summary.json and report.md")
    o.add_argument("--json", help="also write the summary to this JSON file")
    o.add_argument(
        "--npix",
        type=_integer(8),
        default=d["npix"],
        help=f"pupil pixels across ({d['npix']}; the tutorial's is 256)",
    )
    o.add_argument(
        "--psf-npix",
        type=_integer(4),
        default=d["psf_npix"],
        help=f"detector pixels across ({d['psf_npix']})",
    )
    o.add_argument(
        "--n-zernike",
        type=_integer(1),
        default=d["n_zernike"],
        help=f"Zernike terms from defocus on ({d['n_zernike']})",
    )
    o.add_argument(
        "--filters",
        type=_integer(1),
        default=d["filters"],
        help=f"number of filters ({d['filters']})",
    )
    o.add_argument(
        "--n-images",
        type=_integer(2),
        default=d["n_images"],
        help=f"exposures averaged per filter ({d['n_images']})",
    )
    o.add_argument(
        "--seed",
        type=_integer(0),
        default=d["seed"],
        help=f"seed of truth, noise and chains ({d['seed']})",
    )
    o.add_argument(
        "--ngd-steps",
        type=_integer(1),
        default=d["ngd_steps"],
        help=f"natural-gradient steps ({d['ngd_steps']})",
    )
    o.add_argument(
        "--learning-rate",
        type=_rate,
        default=d["learning_rate"],
        help=f"natural-gradient rate ({d['learning_rate']})",
    )
    o.add_argument(
        "--refresh-every",
        type=_integer(1),
        default=d["refresh_every"],
        help=f"steps between Fisher updates of the natural gradient ({d['refresh_every']})",
    )
    o.add_argument(
        "--max-steps",
        type=_integer(1),
        default=d["max_steps"],
        help=f"most L-BFGS steps ({d['max_steps']})",
    )
    o.add_argument(
        "--nuts-warmup",
        type=_integer(0),
        default=d["nuts_warmup"],
        help=f"NUTS warm-up steps per chain ({d['nuts_warmup']})",
    )
    o.add_argument(
        "--nuts-samples",
        type=_integer(0),
        default=d["nuts_samples"],
        help=f"NUTS draws per chain, 0 to skip ({d['nuts_samples']})",
    )
    o.add_argument(
        "--nuts-chains",
        type=_integer(1),
        default=d["nuts_chains"],
        help=f"NUTS chains ({d['nuts_chains']})",
    )
    o.add_argument(
        "--corner-params",
        type=_integer(0),
        default=d["corner_params"],
        help=f"parameters in the corner plot, 0 for all ({d['corner_params']})",
    )
    o.add_argument("--quiet", action="store_true", help="no progress bars")
    _calibrate_parser(sub)
    return parser


def _calibrate_parser(sub: Any) -> None:
    """``calibrate optics`` and ``calibrate gaussians``: one option per setting."""
    from ._calibrate_gaussians import SBC_DEFAULTS
    from ._calibrate_optics import OPTICS_CALIBRATION_DEFAULTS

    c = sub.add_parser("calibrate", help="calibration of error bars and samplers")
    kinds = c.add_subparsers(dest="experiment", required=True)
    for name, defaults, text in [
        ("optics", OPTICS_CALIBRATION_DEFAULTS, "coverage of the optics fit's error bars"),
        ("gaussians", SBC_DEFAULTS, "simulation-based calibration of nuts, mams, nested_sampling"),
    ]:
        parser = kinds.add_parser(name, help=text, description=text)
        parser.add_argument("--out", help="folder for the figures, summary.json and report.md")
        parser.add_argument("--quiet", action="store_true", help="no progress bars")
        for key, value in defaults.items():
            kind = _integer(0 if key == "seed" else 1) if isinstance(value, int) else type(value)
            parser.add_argument(
                f"--{key.replace('_', '-')}", type=kind, default=value, help=f"({value})"
            )


def calibrate(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``calibrate optics`` or ``calibrate gaussians`` from parsed options; a summary."""
    from ._calibrate_gaussians import SBC_DEFAULTS, sbc_gaussians
    from ._calibrate_optics import OPTICS_CALIBRATION_DEFAULTS, calibrate_optics
    from ._calibration_report import write_optics_calibration, write_sbc_report

    progress = not args.quiet
    if args.experiment == "optics":
        settings = {key: getattr(args, key) for key in OPTICS_CALIBRATION_DEFAULTS}
        summary = calibrate_optics(progress=progress, **settings)
        if args.out:
            write_optics_calibration(summary, _folder(args.out))
        return {
            "converged": summary["converged"],
            "coverage_1sigma": summary["coverage"]["overall"][0],
            "coverage_2sigma": summary["coverage"]["overall"][1],
            "pull_std": summary["pull_statistics"]["overall_std"],
            "total_seconds": summary["total_seconds"],
        }
    settings = {key: getattr(args, key) for key in SBC_DEFAULTS}
    summary = sbc_gaussians(progress=progress, **settings)
    if args.out:
        write_sbc_report(summary, _folder(args.out))
    names = [n for n in ("nuts", "mams", "nested_sampling") if n in summary]
    return {f"{n}_min_pvalue_bonferroni": summary[n].get("min_pvalue_bonferroni") for n in names}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``zdx-examples``; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "optics-fit" and 0 < args.nuts_samples < 4:
        parser.error(f"argument --nuts-samples: must be 0 or >= 4, got {args.nuts_samples}")
    import matplotlib

    matplotlib.use("Agg")
    jax.config.update("jax_enable_x64", True)
    if args.command == "gaussians-fit":
        summary = gaussians_fit(seed=args.seed, out=args.out)
    elif args.command == "calibrate":
        summary = calibrate(args)
    else:
        settings = {key: getattr(args, key) for key in DEFAULTS}
        summary = optics_fit(out=args.out, progress=not args.quiet, **settings)
    _print_summary(summary)
    if getattr(args, "json", None):
        pathlib.Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    if getattr(args, "out", None):
        print(f"report written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
