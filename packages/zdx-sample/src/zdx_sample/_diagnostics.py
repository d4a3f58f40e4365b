"""Convergence diagnostics of MCMC draws: rank-normalised split R-hat and bulk ESS."""

from __future__ import annotations

from typing import Any

import numpy as onp
from numpyro.diagnostics import effective_sample_size, gelman_rubin
from scipy.special import ndtri
from scipy.stats import rankdata


def _split(draws: onp.ndarray) -> onp.ndarray:
    """Split each chain in two halves (dropping the middle draw of an odd count)."""
    half = draws.shape[1] // 2
    return onp.concatenate([draws[:, :half], draws[:, draws.shape[1] - half :]], axis=0)


def _rank_normalise(draws: onp.ndarray) -> onp.ndarray:
    """Normal scores of the pooled ranks (average ranks for ties), Blom's offsets."""
    ranks = rankdata(draws, method="average").reshape(draws.shape)
    return ndtri((ranks - 0.375) / (draws.size + 0.25))


def rhat_and_ess(draws: Any) -> tuple[onp.ndarray, onp.ndarray]:
    """Rank-normalised split R-hat and bulk effective sample size of every parameter.

    Vehtari, Gelman, Simpson, Carpenter & Buerkner (2021), Bayesian Analysis 16(2): the
    draws of each chain are split in halves and replaced by the normal scores of their
    pooled ranks; R-hat is the larger of the Gelman-Rubin statistic of these scores and of
    the scores of the folded draws ``|x - median|``, and the bulk ESS is numpyro's
    effective sample size of the scores. Works with a single chain (its halves are
    compared).

    Parameters
    ----------
    draws : array
        ``(chains, draws, n)``.

    Returns
    -------
    r_hat, ess_bulk : ndarray
        ``(n,)`` each; a constant parameter gets R-hat 1 and ESS equal to the draw count.
    """
    draws = onp.asarray(draws, dtype=float)
    chains, num, n = draws.shape
    if num < 4:
        raise ValueError(f"R-hat and ESS need at least 4 draws per chain, got {num}.")
    r_hat = onp.empty(n)
    ess = onp.empty(n)
    for i in range(n):
        x = draws[:, :, i]
        if onp.ptp(x) == 0:
            r_hat[i], ess[i] = 1.0, float(chains * num)
            continue
        split = _split(x)
        scores = _rank_normalise(split)
        folded = _rank_normalise(onp.abs(split - onp.median(x)))
        r_hat[i] = max(float(gelman_rubin(scores)), float(gelman_rubin(folded)))
        ess[i] = float(effective_sample_size(scores))
    return r_hat, ess
