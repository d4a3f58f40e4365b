"""Reports of the calibration commands: figures, ``summary.json`` and ``report.md``."""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any

import numpy as onp

import zdx_stats


def _save(figure: Any, path: pathlib.Path) -> None:
    import matplotlib.pyplot as plt

    figure.savefig(path, dpi=100)
    plt.close(figure)


def _write_summary_and_report(
    out: pathlib.Path, summary: dict[str, Any], lines: list[str]
) -> dict[str, str]:
    """Write ``summary.json`` and ``report.md`` (``lines``) into ``out``; their paths."""
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "report.md").write_text("\n".join(lines))
    return {name: str(out / name) for name in ("summary.json", "report.md")}


def _chance_outside(std_error: float) -> float:
    """The probability that one parameter's pull standard deviation falls outside
    [0.9, 1.1] for a calibrated estimator, its sampling distribution taken as normal."""
    return float(math.erfc(0.1 / (std_error * math.sqrt(2))))


def optics_verdict(summary: dict[str, Any]) -> list[str]:
    """The targets of the optics calibration, one line each, met or missed.

    Targets: coverage at 1 and 2 sigma within 3 binomial sigma of nominal, per parameter
    and overall; the pull standard deviation over all parameters within [0.9, 1.1]. The
    per-parameter standard deviations are reported with how many a calibrated estimator
    would put outside [0.9, 1.1] by chance.
    """
    cover = summary["coverage"]
    stats = summary["pull_statistics"]
    lines = []
    for i, level in enumerate(cover["levels"]):
        deviation = onp.asarray(cover["deviation_sigmas"][i])
        worst = int(onp.argmax(onp.abs(deviation)))
        overall = (cover["overall"][i] - cover["nominal"][i]) / cover["error_overall"][i]
        ok = bool(onp.all(onp.abs(deviation) <= 3))
        lines.append(
            f"{'met' if ok else 'MISSED'}: coverage at {level:g} sigma within 3 binomial sigma "
            f"of {cover['nominal'][i]:.4f} for every parameter (worst "
            f"{summary['names'][worst]}: {cover['per_parameter'][i][worst]:.3f}, "
            f"{deviation[worst]:+.2f} sigma); overall {cover['overall'][i]:.4f} "
            f"({overall:+.2f} sigma of the independent-trials error)"
        )
    std = onp.asarray(stats["std"])
    overall_ok = 0.9 <= stats["overall_std"] <= 1.1
    lines.append(
        f"{'met' if overall_ok else 'MISSED'}: pull standard deviation in [0.9, 1.1] over "
        f"all parameters ({stats['overall_std']:.3f})"
    )
    outside = int(onp.sum((std < 0.9) | (std > 1.1)))
    chance = _chance_outside(float(stats["std_error"][0]))
    lines.append(
        f"per parameter: {outside} of {std.size} pull standard deviations outside [0.9, 1.1] "
        f"(from {std.min():.3f} to {std.max():.3f}). With a standard error of "
        f"{stats['std_error'][0]:.3f} per parameter, a calibrated estimator puts "
        f"{std.size * chance:.1f} of {std.size} outside on average, and all inside with "
        f"probability {(1 - chance) ** std.size:.2f} (independent parameters), so a few "
        "outside is not evidence against the error bars; a joint test of the variances is "
        "what decides (see examples/results/calibrate-optics-pulls)"
    )
    return lines


def write_optics_calibration(summary: dict[str, Any], out: pathlib.Path) -> dict[str, str]:
    """Write ``pulls.png``, ``coverage.png``, ``summary.json`` and ``report.md`` to ``out``;
    file name -> path of each."""
    out.mkdir(parents=True, exist_ok=True)
    names = summary["names"]
    pulls = onp.asarray(summary["pulls"])
    cover = zdx_stats.coverage(pulls, levels=summary["coverage"]["levels"])
    _save(zdx_stats.plot_pull_histograms(pulls, names), out / "pulls.png")
    _save(zdx_stats.plot_coverage(cover, names, pulls), out / "coverage.png")
    s = summary["settings"]
    stats = summary["pull_statistics"]
    lines = [
        "# Calibration of the optics fit's Hessian error bars",
        "",
        "Settings: " + ", ".join(f"`{k}={v}`" for k, v in s.items()) + ".",
        "",
        f"{s['n']} data sets simulated from one truth (`true_parameters(seed={s['seed']})`), "
        "each fitted from its data-based start after the sign search over the even Zernike "
        "terms, by natural-gradient descent, all in compiled blocks (`zdx_opt.fit_many`); "
        "the error bars are the square roots of the diagonal of the inverse Hessian of "
        "minus the log-likelihood at each fit (`zdx_opt.hessian_many`).",
        "",
        f"- fits that reached the noise (chi2r < 1.5, positive-definite Hessian): "
        f"{summary['converged']} of {s['n']}"
        + (f"; left out: {summary['not_converged']}" if summary["not_converged"] else ""),
        f"- reduced chi-squared of the fits: median {onp.median(summary['chi2r']):.4f}, "
        f"from {min(summary['chi2r']):.4f} to {max(summary['chi2r']):.4f}",
        f"- seconds per stage: {summary['seconds']} (total {summary['total_seconds']:.0f} s)",
        "",
        "## Targets",
        "",
        *[f"- {line}" for line in optics_verdict(summary)],
        "",
        "## Pulls per parameter",
        "",
        "| parameter | mean | std | normality p | within 1 sigma | within 2 sigma |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    per = summary["coverage"]["per_parameter"]
    for j, name in enumerate(names):
        lines.append(
            f"| {name} | {stats['mean'][j]:+.3f} ± {stats['mean_error'][j]:.3f} | "
            f"{stats['std'][j]:.3f} ± {stats['std_error'][j]:.3f} | "
            f"{stats['normality_pvalue'][j]:.3f} | {per[0][j]:.3f} | {per[1][j]:.3f} |"
        )
    cov = summary["coverage"]
    lines += [
        f"| **all** | {stats['overall_mean']:+.3f} | {stats['overall_std']:.3f} | "
        f"{stats['overall_normality_pvalue']:.3g} | {cov['overall'][0]:.4f} | "
        f"{cov['overall'][1]:.4f} |",
        "",
        f"Nominal: {cov['nominal'][0]:.4f} ± {cov['error_per_parameter'][0]:.4f} and "
        f"{cov['nominal'][1]:.4f} ± {cov['error_per_parameter'][1]:.4f} per parameter "
        "(binomial). The overall fractions pool correlated parameters of the same fit, so "
        "their binomial error is a lower bound.",
        "",
        "![pulls](pulls.png)",
        "",
        "![coverage](coverage.png)",
        "",
    ]
    figures = {name: str(out / name) for name in ("pulls.png", "coverage.png")}
    return {**figures, **_write_summary_and_report(out, summary, lines)}


def write_sbc_report(summary: dict[str, Any], out: pathlib.Path) -> dict[str, str]:
    """Write one rank-histogram figure per sampler, ``summary.json`` and ``report.md`` to
    ``out``; file name -> path of each."""
    out.mkdir(parents=True, exist_ok=True)
    s = summary["settings"]
    samplers = [name for name in ("nuts", "mams", "nested_sampling") if name in summary]
    paths = {}
    lines = [
        "# Simulation-based calibration of the samplers (sum of Gaussians)",
        "",
        "Settings: " + ", ".join(f"`{k}={v}`" for k, v in s.items()) + ".",
        "",
        "Talts et al. (2018): each replication draws the six parameters from the prior "
        "(`gaussian_prior`), simulates data, samples the posterior and records the rank of "
        "the truth among the draws; ranks of a correct sampler are uniform. The test is "
        "Pearson's chi-squared on the rank histogram, per parameter; the verdict at 1 % "
        "uses the smallest p-value times 6 (Bonferroni over the parameters).",
        "",
    ]
    for name in samplers:
        record = summary[name]
        if record.get("test") is None:
            lines += [f"## {name}", "", f"- no uniformity test: {record['note']}", ""]
            continue
        figure = zdx_stats.plot_rank_histograms(
            onp.asarray(record["counts"]), summary["names"], title=f"SBC ranks, {name}"
        )
        _save(figure, out / f"ranks_{name}.png")
        paths[f"ranks_{name}.png"] = str(out / f"ranks_{name}.png")
        verdict = "not rejected" if record["uniform_at_1_percent"] else "REJECTED"
        lines += [
            f"## {name}",
            "",
            f"- uniformity at 1 %: **{verdict}** (smallest p-value "
            f"{record['min_pvalue']:.4f}, Bonferroni {record['min_pvalue_bonferroni']:.4f}; "
            f"{len(record['ranks'])} replications, {record['bins']} bins)",
            "- p-value per parameter: "
            + ", ".join(f"{n} {p:.3f}" for n, p in zip(summary["names"], record["pvalue"])),
            f"- seconds: {record['seconds']}",
            "",
            f"![ranks of {name}](ranks_{name}.png)",
            "",
        ]
    return {**paths, **_write_summary_and_report(out, summary, lines)}
