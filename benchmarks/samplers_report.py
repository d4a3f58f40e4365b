"""The sampler section of the benchmark report, from the newest ``samplers_<size>_*.json``.

Imports nothing but the standard library, so that ``report.py`` can use it anywhere.
"""

from __future__ import annotations

import glob
import json
import os

SAMPLER_NAMES = {
    "zdx-nuts": "`zdx_sample.nuts`",
    "zdx-mams": '`zdx_sample.nuts(method="mams")`',
    "numpyro": "numpyro NUTS (dense)",
    "blackjax": "blackjax window_adaptation + NUTS (dense)",
}


def newest_samplers(folder: str, size: str) -> str | None:
    found = sorted(glob.glob(os.path.join(folder, f"samplers_{size}_*.json")))
    return found[-1] if found else None


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _seconds(value) -> str:
    return "—" if value is None else f"{value:.3f} s"


def sampler_section(folder: str, size: str) -> str | None:
    """Markdown for the newest sampler results of ``size`` (or of the other size when
    there are none), or None when the folder has no sampler results."""
    path = newest_samplers(folder, size)
    if path is None:
        path = newest_samplers(folder, "quick" if size == "full" else "full")
    if path is None:
        return None
    with open(path) as stream:
        results = json.load(stream)
    rows = results["rows"]
    lines = [
        f"#### Samplers ({results['size']} size, `{os.path.basename(path)}`)",
        "",
        "One chain per sampler (or as stated), warm-up then kept draws, timed after a first "
        "(compiling) call, the samplers in turn, the fastest of `repeats` rounds; `CPU` is the "
        "CPU time of the process in that round (steadier than the wall time on a shared "
        "machine; above it when XLA ran the program on two threads); ESS is the smallest "
        "bulk ESS over the coordinates (the same estimator for every sampler); gradients "
        "are those of the kept draws; `sd error` is the largest relative error of the "
        "marginal standard deviations where they are known. `benchmarks/samplers.py` "
        "describes the targets.",
        "",
        f"Versions: {_versions(results.get('versions'))}.",
        "",
        "| target | sampler | chains | warm-up + draws | time | CPU | min ESS | ESS/s | "
        "ESS/CPU s | ESS/gradient | max R-hat | sd error |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['target']} | {SAMPLER_NAMES.get(row['sampler'], row['sampler'])} | "
            f"{row['chains']} | {row['num_warmup']} + {row['num_samples']} | "
            f"{row['seconds']:.3f} s | {_seconds(row.get('cpu_seconds'))} | "
            f"{row['min_ess_bulk']:.0f} | {_fmt(row['ess_per_second'])} | "
            f"{_fmt(row.get('ess_per_cpu_second'))} | {row['ess_per_gradient']:.3f} | "
            f"{row['max_r_hat']:.3f} | {_fmt(row.get('max_sd_error'), 2)} |"
        )
    scaling = results.get("chain_scaling")
    if scaling:
        lines += [
            "",
            f"Many chains of `{scaling['target']}` in one call of `zdx_sample.nuts` "
            f"({scaling['num_warmup']} + {scaling['num_samples']} each, second call):",
            "",
            "| chains | time | time per chain | min ESS | ESS/s |",
            "|---|---|---|---|---|",
        ]
        for row in scaling["rows"]:
            lines.append(
                f"| {row['chains']} | {row['seconds']:.3f} s | "
                f"{1000 * row['seconds'] / row['chains']:.1f} ms | {row['min_ess_bulk']:.0f} | "
                f"{_fmt(row['min_ess_bulk'] / row['seconds'])} |"
            )
    return "\n".join(lines)


def _versions(versions: dict | None) -> str:
    """``Python 3.13.0, jax 0.12.1, ...`` from a results file's versions (older files
    name no Python)."""
    if not versions:
        return "not recorded"
    names = {"python": "Python"}
    return ", ".join(f"{names.get(k, k)} {v}" for k, v in versions.items())
