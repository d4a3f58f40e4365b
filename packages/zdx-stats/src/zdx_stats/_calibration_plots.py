"""Figures of a calibration: pull histograms, coverage against nominal, SBC rank histograms.

matplotlib is an optional dependency (``pip install zdx-stats[plot]``), imported when a
figure is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
from jax.scipy.special import gammaincc

from ._calibration import Coverage, nominal_coverage


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "zdx_stats calibration figures need matplotlib: pip install 'zdx-stats[plot]'."
        ) from None
    return plt


def _grid(count: int, width: float = 2.6):
    plt = _pyplot()
    cols = min(count, 4)
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, 2.2 * rows), squeeze=False)
    for ax in axes.ravel()[count:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def plot_pull_histograms(pull_values: Any, names: Sequence[str], bins: int = 20):
    """One histogram of pulls per parameter, with the ``N(0, 1)`` density over it.

    Parameters
    ----------
    pull_values : array_like
        ``(trials, parameters)`` pulls.
    names : sequence of str
        A name per parameter.
    bins : int
        Histogram bins over ``[-4, 4]`` (pulls beyond are counted at the edges).

    Returns
    -------
    figure : matplotlib.figure.Figure
    """
    values = jnp.atleast_2d(jnp.asarray(pull_values, float).T).T
    if values.shape[1] != len(names):
        raise ValueError(
            f"plot_pull_histograms: {values.shape[1]} parameters but {len(names)} names."
        )
    fig, axes = _grid(values.shape[1])
    grid = jnp.linspace(-4, 4, 200)
    density = jnp.exp(-0.5 * grid**2) / math.sqrt(2 * math.pi)
    for ax, name, column in zip(axes, names, values.T):
        clipped = jnp.clip(column, -4, 4)
        ax.hist(clipped, bins=bins, range=(-4, 4), density=True, color="tab:blue", alpha=0.6)
        ax.plot(grid, density, color="k", lw=1)
        ax.set_title(
            f"{name}\nmean {float(column.mean()):.2f}, std {float(column.std(ddof=1)):.2f}",
            fontsize=8,
        )
        ax.tick_params(labelsize=7)
    fig.suptitle("pulls (fit - truth) / sigma against N(0, 1)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_coverage(cover: Coverage, names: Sequence[str], pull_values: Any = None):
    """Coverage against the nominal level: per parameter and overall, with 1 and 3 sigma
    binomial bands.

    Parameters
    ----------
    cover : Coverage
        From :func:`zdx_stats.coverage` (its levels are marked).
    names : sequence of str
        A name per parameter.
    pull_values : array_like, optional
        ``(trials, parameters)`` pulls: adds the observed fraction of ``|pull| <= k``
        against the nominal coverage for every ``k`` from 0 to 3.

    Returns
    -------
    figure : matplotlib.figure.Figure
    """
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    nominal = jnp.asarray(cover.nominal)
    trials = cover.trials
    grid = jnp.linspace(0.0, 1.0, 101)
    band = jnp.sqrt(grid * (1 - grid) / trials)
    left.fill_between(grid, grid - 3 * band, grid + 3 * band, color="0.9", label="3 sigma")
    left.fill_between(grid, grid - band, grid + band, color="0.75", label="1 sigma")
    left.plot(grid, grid, "k-", lw=0.8)
    if pull_values is not None:
        values = jnp.abs(jnp.asarray(pull_values, float)).ravel()
        levels = jnp.linspace(0.0, 3.0, 61)
        observed = jnp.mean(values[None, :] <= levels[:, None], axis=1)
        left.plot(nominal_coverage(levels), observed, "-", color="tab:red", label="all, 0-3 sigma")
    for i, level in enumerate(cover.levels):
        left.plot(
            jnp.full(len(names), nominal[i]),
            cover.per_parameter[i],
            "o",
            ms=3,
            alpha=0.7,
            label=f"{float(level):g} sigma, per parameter",
        )
        left.plot(nominal[i], cover.overall[i], "k*", ms=9)
    left.set_xlabel("nominal coverage")
    left.set_ylabel("observed coverage")
    left.set_title(f"{trials} trials; stars: all parameters", fontsize=9)
    left.legend(fontsize=6)
    x = jnp.arange(len(names))
    for i, level in enumerate(cover.levels):
        err = cover.error_per_parameter[i]
        right.errorbar(
            x, cover.per_parameter[i], yerr=err, fmt="o", ms=3, label=f"{float(level):g} sigma"
        )
        right.axhline(float(nominal[i]), color="k", lw=0.8)
        right.axhspan(
            float(nominal[i] - 3 * err), float(nominal[i] + 3 * err), color="0.9", zorder=0
        )
    right.set_xticks(x)
    right.set_xticklabels(names, rotation=90, fontsize=6)
    right.set_ylabel("fraction within")
    right.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_rank_histograms(counts: Any, names: Sequence[str], title: str = "SBC ranks"):
    """Rank histograms with the 99 % band of a uniform histogram (binomial per bin).

    Parameters
    ----------
    counts : array_like
        ``(parameters, bins)`` from :func:`zdx_stats.rank_histogram`.
    names : sequence of str
        A name per parameter.
    title : str
        The figure's title.

    Returns
    -------
    figure : matplotlib.figure.Figure
    """
    counts = jnp.asarray(counts)
    if counts.ndim != 2 or counts.shape[0] != len(names):
        raise ValueError(
            f"plot_rank_histograms: counts of shape {counts.shape} do not match {len(names)} names."
        )
    fig, axes = _grid(counts.shape[0])
    bins = counts.shape[1]
    trials = int(counts[0].sum())
    p = 1.0 / bins
    mean, sd = trials * p, math.sqrt(trials * p * (1 - p))
    low, high = mean - 2.576 * sd, mean + 2.576 * sd
    for ax, name, row in zip(axes, names, counts):
        ax.axhspan(low, high, color="0.85", zorder=0)
        ax.axhline(mean, color="k", lw=0.8)
        ax.bar(jnp.arange(bins), row, width=0.9, color="tab:orange", alpha=0.8)
        statistic = float(jnp.sum((row - mean) ** 2 / mean))
        pvalue = float(gammaincc((bins - 1) / 2.0, statistic / 2.0))
        ax.set_title(f"{name}\nuniformity p = {pvalue:.3f}", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{title}: {trials} trials, {bins} bins, grey band 99 %", fontsize=9)
    fig.tight_layout()
    return fig
