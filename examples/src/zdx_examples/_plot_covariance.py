"""Figures of the fit's uncertainties: the curvature, covariance and correlation matrices
and the corner plot of the posterior.

Each function returns a ``matplotlib.figure.Figure``; save it with ``fig.savefig(path)``
(any backend, Agg included) or show it in a notebook.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as onp
from matplotlib.colors import CenteredNorm
from matplotlib.figure import Figure

from ._plots import _as_numpy


def _matrix_panel(fig, ax, matrix, names, title, label, **imshow):
    image = ax.imshow(matrix, **imshow)
    ticks = onp.arange(len(names))
    size = 7 if len(names) <= 20 else 5
    ax.set_xticks(ticks, names, rotation=90, fontsize=size)
    ax.set_yticks(ticks, names, fontsize=size)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label=label, shrink=0.8)


def _log_abs(matrix: onp.ndarray, decades: float = 16.0) -> onp.ndarray:
    """``log10 |matrix|`` with exact zeros as NaN, floored ``decades`` below the largest."""
    magnitude = onp.abs(matrix)
    with onp.errstate(divide="ignore"):
        logs = onp.where(
            magnitude > 0, onp.log10(onp.where(magnitude > 0, magnitude, 1.0)), onp.nan
        )
    if onp.any(onp.isfinite(logs)):
        logs = onp.maximum(logs, onp.nanmax(logs) - decades)
    return logs


def plot_matrices(curvature: Any, covariance: Any, names: Sequence[str]) -> Figure:
    """The loss curvature, the covariance and the correlation matrix, with parameter names.

    Parameters
    ----------
    curvature : array_like
        ``(n, n)`` the loss curvature at the start (the Fisher matrix times one factor).
    covariance : array_like
        ``(n, n)`` the covariance (inverse Hessian at the best fit).
    names : Sequence[str]
        The ``n`` parameter names.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    curvature, covariance = _as_numpy(curvature), _as_numpy(covariance)
    sigma = onp.sqrt(onp.diag(covariance))
    correlation = covariance / onp.outer(sigma, sigma)
    fig = Figure(figsize=(17, 5.2), layout="constrained")
    axes = fig.subplots(1, 3)
    cmap = matplotlib.colormaps["inferno"].with_extremes(bad="0.75")
    _matrix_panel(
        fig,
        axes[0],
        _log_abs(curvature),
        names,
        "Loss curvature at the start",
        "log10 |F| (grey: exactly 0)",
        cmap=cmap,
    )
    _matrix_panel(
        fig,
        axes[1],
        _log_abs(covariance),
        names,
        "Covariance at the best fit",
        "log10 |C|",
        cmap=cmap,
    )
    _matrix_panel(
        fig,
        axes[2],
        correlation,
        names,
        "Correlation at the best fit",
        "correlation",
        cmap="seismic",
        norm=CenteredNorm(halfrange=1.0),
    )
    return fig


def key_parameters(covariance: Any, k: int = 6) -> list[int]:
    """The ``k`` parameters most correlated with another one, in their original order.

    Parameters
    ----------
    covariance : array_like
        ``(n, n)`` covariance matrix.
    k : int
        How many to pick; all ``n`` when ``k <= 0`` or ``k >= n``.

    Returns
    -------
    indices : list[int]

    >>> import numpy as np
    >>> cov = np.array([[1.0, 0.9, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 1.0]])
    >>> key_parameters(cov, 2)
    [0, 1]
    """
    covariance = _as_numpy(covariance)
    n = covariance.shape[0]
    if k <= 0 or k >= n:
        return list(range(n))
    sigma = onp.sqrt(onp.diag(covariance))
    correlation = onp.abs(covariance / onp.outer(sigma, sigma))
    onp.fill_diagonal(correlation, 0.0)
    strongest = onp.argsort(-correlation.max(axis=1), kind="stable")[:k]
    return sorted(int(i) for i in strongest)


def _ellipse(correlation2: onp.ndarray, radius: float) -> tuple[onp.ndarray, onp.ndarray]:
    values, vectors = onp.linalg.eigh(correlation2)
    t = onp.linspace(0, 2 * onp.pi, 200)
    circle = onp.stack([onp.cos(t), onp.sin(t)])
    points = vectors @ (radius * onp.sqrt(onp.clip(values, 0, None))[:, None] * circle)
    return points[0], points[1]


def corner_plot(
    mean: Any,
    covariance: Any,
    names: Sequence[str],
    samples: Any = None,
    truth: Any = None,
    select: Sequence[int] | None = None,
) -> Figure:
    """A corner plot of posterior draws against the Hessian's Gaussian and the truth.

    Every axis is standardised by the Gaussian approximation: ``(value - mean) / sigma``
    with ``sigma = sqrt(diag(covariance))``, so the Gaussian is a unit normal on the
    diagonal and its 1- and 2-sigma ellipses (Mahalanobis radius 1 and 2) show the
    correlations off the diagonal; a draw or a truth at 3 is 3 sigma away from the fit.

    Parameters
    ----------
    mean : array_like
        ``(n,)`` centre of the Gaussian (the best fit).
    covariance : array_like
        ``(n, n)`` its covariance (the inverse Hessian).
    names : Sequence[str]
        The ``n`` parameter names.
    samples : array_like, optional
        ``(m, n)`` posterior draws, shown as points and histograms.
    truth : array_like, optional
        ``(n,)`` true values, shown as lines.
    select : Sequence[int], optional
        Which parameters to show (default all).

    Returns
    -------
    fig : matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If the shapes do not agree.
    """
    mean, covariance = _as_numpy(mean), _as_numpy(covariance)
    n = mean.shape[0]
    if covariance.shape != (n, n) or len(names) != n:
        raise ValueError(
            f"corner_plot: `mean` has {n} entries, `covariance` shape {covariance.shape} and "
            f"`names` {len(names)} entries; expected ({n},), ({n}, {n}) and {n}."
        )
    idx = list(range(n)) if select is None else [int(i) for i in select]
    sigma = onp.sqrt(onp.diag(covariance))
    corr = (covariance / onp.outer(sigma, sigma))[onp.ix_(idx, idx)]
    z_samples = None
    if samples is not None:
        samples = _as_numpy(samples)
        if samples.ndim != 2 or samples.shape[1] != n:
            raise ValueError(
                f"corner_plot: `samples` must have shape (m, {n}), got {samples.shape}."
            )
        z_samples = ((samples - mean) / sigma)[:, idx]
    z_truth = None if truth is None else ((_as_numpy(truth) - mean) / sigma)[idx]

    k = len(idx)
    limits = onp.full(k, 3.5)
    if z_samples is not None:
        limits = onp.maximum(limits, 1.05 * onp.max(onp.abs(z_samples), axis=0))
    if z_truth is not None:
        limits = onp.maximum(limits, 1.2 * onp.abs(z_truth))
    size = max(6.0, 1.9 * k)
    fig = Figure(figsize=(size, size), layout="constrained")
    axes = fig.subplots(k, k, squeeze=False)
    grid = onp.linspace(-limits.max(), limits.max(), 400)
    for row in range(k):
        for col in range(k):
            ax = axes[row, col]
            if col > row:
                ax.set_axis_off()
                continue
            ax.tick_params(labelsize=7)
            if row == col:
                if z_samples is not None:
                    ax.hist(z_samples[:, col], bins=30, density=True, color="C0", alpha=0.5)
                ax.plot(grid, onp.exp(-0.5 * grid**2) / onp.sqrt(2 * onp.pi), color="k")
                if z_truth is not None:
                    ax.axvline(z_truth[col], color="C3")
                ax.set_yticks([])
            else:
                if z_samples is not None:
                    ax.scatter(
                        z_samples[:, col],
                        z_samples[:, row],
                        s=2,
                        color="C0",
                        alpha=0.3,
                        rasterized=True,
                    )
                sub = corr[onp.ix_([col, row], [col, row])]
                for radius, style in ((1.0, "-"), (2.0, "--")):
                    ax.plot(*_ellipse(sub, radius), color="k", linestyle=style, linewidth=1)
                if z_truth is not None:
                    ax.axvline(z_truth[col], color="C3", linewidth=0.8)
                    ax.axhline(z_truth[row], color="C3", linewidth=0.8)
                    ax.plot(z_truth[col], z_truth[row], "s", color="C3", markersize=3)
                ax.set_ylim(-limits[row], limits[row])
            ax.set_xlim(-limits[col], limits[col])
            if row == k - 1:
                ax.set_xlabel(names[idx[col]], fontsize=8)
            else:
                ax.set_xticklabels([])
            if col == 0 and row > 0:
                ax.set_ylabel(names[idx[row]], fontsize=8)
            elif col != row:
                ax.set_yticklabels([])
    legend = [
        ("k", "-", "Hessian 1σ (Mahalanobis 1)"),
        ("k", "--", "Hessian 2σ"),
        ("C3", "-", "truth"),
    ]
    if z_samples is not None:
        legend.insert(0, ("C0", "", f"NUTS draws ({z_samples.shape[0]})"))
    handles = [
        axes[0, -1].plot([], [], color=c, linestyle=ls or "none", marker="o" if not ls else None)[0]
        for c, ls, _ in legend
    ]
    fig.legend(handles, [text for *_, text in legend], loc="upper right", fontsize=9, frameon=False)
    fig.suptitle("Posterior vs Hessian: axes are (value − best fit) / σ_Hessian")
    return fig
