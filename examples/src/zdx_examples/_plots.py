"""Figures of how the optics fit went: loss curves, parameter paths, pulls, the Gaussians.

Each function returns a ``matplotlib.figure.Figure``; save it with ``fig.savefig(path)``
(any backend, Agg included) or show it in a notebook.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as onp
from matplotlib.figure import Figure


def _as_numpy(x: Any) -> onp.ndarray:
    return onp.asarray(x, dtype=float)


def group_of(name: str) -> str:
    """The top-level group of a scalar name: ``"position.blue[0]"`` -> ``"position"``.

    >>> group_of("position.blue[0]"), group_of("wfe[3]"), group_of("flux")
    ('position', 'wfe', 'flux')
    """
    return re.split(r"[.\[]", name, maxsplit=1)[0]


def plot_losses(
    ngd_losses: Any, lbfgs_losses: Any = None, reference: float | None = None
) -> Figure:
    """The loss along the natural-gradient steps and the L-BFGS evaluations.

    Parameters
    ----------
    ngd_losses : array_like
        The loss before each natural-gradient step.
    lbfgs_losses : array_like, optional
        The loss at each L-BFGS evaluation (line-search trials included); without it the
        figure has the natural-gradient panel only.
    reference : float, optional
        A loss to draw as a dashed line, e.g. the loss at the true parameters.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    panels = [(_as_numpy(ngd_losses), "Natural gradient descent", "step")]
    if lbfgs_losses is not None:
        panels.append((_as_numpy(lbfgs_losses), "Whitened L-BFGS", "loss evaluation"))
    fig = Figure(figsize=(5.5 * len(panels), 3.8), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (losses, title, xlabel) in zip(axes, panels):
        if losses.size:
            ax.plot(onp.arange(losses.size), losses, marker="." if losses.size < 60 else None)
        if reference is not None:
            ax.axhline(reference, color="k", linestyle="--", linewidth=1, label="loss at the truth")
            ax.legend()
        ax.set_yscale("log")
        ax.set(title=title, xlabel=xlabel, ylabel="loss (mean squared z-score per pixel)")
        ax.grid(alpha=0.3)
    return fig


def plot_parameter_history(history: Any, names: Sequence[str], truth: Any = None) -> Figure:
    """How each parameter moved from the start during the natural-gradient descent.

    Parameters
    ----------
    history : array_like
        ``(steps + 1, n)`` the flattened parameters at the start and after each step.
    names : Sequence[str]
        The ``n`` scalar names; one panel per top-level group (``position``, ``wfe``...).
    truth : array_like, optional
        ``(n,)`` the true values, drawn as dashed lines (as offsets from the start).

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    history = _as_numpy(history)
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(group_of(name), []).append(i)
    fig = Figure(figsize=(4.6 * len(groups), 3.9), layout="constrained")
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    steps = onp.arange(history.shape[0])
    for ax, (group, indices) in zip(axes, groups.items()):
        for j, i in enumerate(indices):
            colour = f"C{j % 10}"
            ax.plot(steps, history[:, i] - history[0, i], color=colour, label=names[i])
            if truth is not None:
                ax.axhline(
                    float(_as_numpy(truth)[i] - history[0, i]),
                    color=colour,
                    linestyle="--",
                    linewidth=0.8,
                )
        ax.set(title=group, xlabel="step", ylabel=f"{group} − start")
        ax.grid(alpha=0.3)
        if len(indices) <= 10:
            ax.legend(fontsize=7, ncol=2 if len(indices) > 5 else 1)
    suffix = " (dashed: truth)" if truth is not None else ""
    fig.suptitle("Parameters during the natural-gradient descent" + suffix)
    return fig


def plot_pulls(
    names: Sequence[str],
    fit: Any,
    sigma: Any,
    truth: Any,
    sample_mean: Any = None,
    sample_std: Any = None,
) -> Figure:
    """``(fit - truth) / sigma`` per parameter, with the NUTS mean and spread beside it.

    Parameters
    ----------
    names : Sequence[str]
        The ``n`` parameter names.
    fit, sigma, truth : array_like
        ``(n,)`` best fit, its one-sigma uncertainty (Hessian) and the true values.
    sample_mean, sample_std : array_like, optional
        ``(n,)`` the posterior mean and standard deviation from the draws.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    fit, sigma, truth = _as_numpy(fit), _as_numpy(sigma), _as_numpy(truth)
    x = onp.arange(len(names))
    fig = Figure(figsize=(max(7.0, 0.45 * len(names) + 2), 4.2), layout="constrained")
    ax = fig.subplots()
    ax.axhspan(-2, 2, color="0.92")
    ax.axhspan(-1, 1, color="0.82")
    ax.axhline(0, color="k", linewidth=0.8)
    ax.errorbar(
        x - 0.12, (fit - truth) / sigma, yerr=1.0, fmt="o", capsize=3, label="best fit ± Hessian σ"
    )
    if sample_mean is not None and sample_std is not None:
        mean, std = _as_numpy(sample_mean), _as_numpy(sample_std)
        ax.errorbar(
            x + 0.12,
            (mean - truth) / sigma,
            yerr=std / sigma,
            fmt="s",
            capsize=3,
            label="NUTS mean ± sd",
        )
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    ax.set(ylabel="(estimate − truth) / σ_Hessian", title="Pulls against the truth (bands: 1σ, 2σ)")
    ax.legend(fontsize=8)
    return fig


def plot_gaussians(xs: Any, data: Any, error: float, curves: Mapping[str, Any]) -> Figure:
    """The sum-of-Gaussians data with model curves over it, and the residuals of the last.

    Parameters
    ----------
    xs : array_like
        The grid.
    data : array_like
        The data on the grid.
    error : float
        Its one-sigma uncertainty.
    curves : Mapping[str, array_like]
        Label -> model on the grid (e.g. ``truth``, ``start``, ``best fit``); the last one's
        z-scores are drawn below.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    xs, data = _as_numpy(xs), _as_numpy(data)
    fig = Figure(figsize=(9, 5.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.scatter(xs, data, s=6, color="0.5", label="data")
    for i, (label, values) in enumerate(curves.items()):
        top.plot(xs, _as_numpy(values), color="k" if label == "truth" else f"C{i}", label=label)
    top.set(ylabel="f(x)", title="Sum of Gaussians")
    top.legend()
    last_label, last = list(curves.items())[-1]
    bottom.scatter(xs, (data - _as_numpy(last)) / float(error), s=4, color="C0")
    bottom.axhline(0, color="k", linewidth=0.8)
    bottom.set(xlabel="x", ylabel=f"z-score\n({last_label})")
    return fig
