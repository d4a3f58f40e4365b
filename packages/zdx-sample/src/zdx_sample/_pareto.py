"""The Pareto k-hat diagnostic of importance weights (PSIS, Vehtari et al. 2024)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _gpd_shape(exceedances: np.ndarray) -> float:
    """The shape ``k`` of a generalised Pareto distribution fitted to ``exceedances``.

    The empirical-Bayes estimator of Zhang & Stephens (2009), Technometrics 51(3), 316:
    the profile log-likelihood ``n (log(-theta / k) - k - 1)`` with
    ``k(theta) = mean(log(1 - theta x))`` is evaluated on ``m = 30 + sqrt(n)`` values of
    ``theta`` spread from the largest observation and the first quartile, and ``theta`` is
    its likelihood-weighted mean. As in PSIS, ``k`` is then shrunk towards 0.5 by a
    weakly informative prior worth 10 observations.
    """
    x = np.sort(exceedances)
    n = x.size
    m = 30 + int(math.sqrt(n))
    quartile = x[math.floor(n / 4 + 0.5) - 1]
    if not (quartile > 0 and np.isfinite(x[-1])):
        return math.inf
    j = np.arange(1, m + 1)
    theta = 1 / x[-1] + (1 - np.sqrt(m / (j - 0.5))) / (3 * quartile)
    k = np.mean(np.log1p(-theta[:, None] * x[None, :]), axis=1)
    loglike = n * (np.log(-theta / k) - k - 1)
    weights = 1 / np.sum(np.exp(loglike[None, :] - loglike[:, None]), axis=1)
    keep = weights >= 10 * np.finfo(float).eps
    weights = weights[keep] / np.sum(weights[keep])
    theta_hat = np.sum(weights * theta[keep])
    k_hat = float(np.mean(np.log1p(-theta_hat * x)))
    k_hat = (n * k_hat + 10 * 0.5) / (n + 10)
    return k_hat if math.isfinite(k_hat) else math.inf


def pareto_khat(log_weights: Any) -> float:
    """The Pareto k-hat diagnostic of a set of importance log-weights.

    A generalised Pareto distribution is fitted to the ``M = ceil(min(S / 5, 3 sqrt(S)))``
    largest of the ``S`` weights (above the next largest), as in Pareto-smoothed
    importance sampling (Vehtari, Simpson, Gelman, Yao & Gabry 2024, JMLR 25(72)); its
    shape ``k`` says how heavy the tail of the weights is. Below 0.5 the importance
    estimate converges quickly; up to 0.7 it is usable; above 0.7 the estimate cannot be
    trusted (its variance is effectively infinite for practical sample sizes) and the
    proposal should be improved.

    Parameters
    ----------
    log_weights : array
        ``(S,)`` log importance weights, ``log p(x) - log q(x)``; ``-inf`` entries (zero
        weights) are allowed, NaN is not.

    Returns
    -------
    float
        ``k``; ``inf`` when fewer than 5 weights are in the tail or the fit fails.

    Raises
    ------
    ValueError
        If ``log_weights`` is not one-dimensional, has fewer than 10 entries, holds NaN
        or ``+inf``, or has no finite entry.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> round(pareto_khat(rng.normal(size=4000) * 0.1), 2) < 0.5
    True
    """
    lw = np.asarray(log_weights, dtype=float)
    if lw.ndim != 1 or lw.size < 10:
        raise ValueError(
            f"`log_weights` must be a vector of at least 10 log-weights, got shape {lw.shape}."
        )
    if np.any(np.isnan(lw)) or np.any(lw == np.inf):
        raise ValueError("`log_weights` holds NaN or +inf; importance weights must be finite.")
    if not np.any(np.isfinite(lw)):
        raise ValueError("`log_weights` are all -inf: every importance weight is zero.")
    size = lw.size
    tail_length = math.ceil(min(0.2 * size, 3 * math.sqrt(size)))
    lw = np.sort(lw - np.max(lw))
    cutoff = max(lw[size - tail_length - 1], math.log(np.finfo(float).tiny))
    tail = lw[lw > cutoff]
    if tail.size <= 4:
        return math.inf
    return _gpd_shape(np.exp(tail) - math.exp(cutoff))
