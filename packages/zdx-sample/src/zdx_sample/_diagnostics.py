"""Convergence diagnostics of MCMC draws: rank-normalised split R-hat and bulk ESS."""

from __future__ import annotations

from typing import Any

import numpy as onp
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


def _gelman_rubin(x: onp.ndarray) -> float:
    """The potential scale reduction of ``(chains, draws)`` draws (at least two chains)."""
    n = x.shape[1]
    within = onp.mean(onp.var(x, axis=1, ddof=1))
    between = n * onp.var(onp.mean(x, axis=1), ddof=1)
    return float(onp.sqrt((between / within + n - 1) / n))


def _autocovariance(x: onp.ndarray) -> onp.ndarray:
    """Biased autocovariance of each chain (rows) at every lag, by FFT."""
    n = x.shape[1]
    centred = x - x.mean(axis=1, keepdims=True)
    size = 1 << (2 * n - 1).bit_length()
    spectrum = onp.fft.rfft(centred, n=size, axis=1)
    return onp.fft.irfft(spectrum * onp.conj(spectrum), n=size, axis=1)[:, :n] / n


def effective_sample_size(x: onp.ndarray) -> float:
    """The effective sample size of ``(chains, draws)`` draws, as Stan computes it.

    Autocorrelations combine the within-chain autocovariances with the between-chain
    variance; they are summed in pairs (Geyer's initial positive sequence, made monotone),
    with the last positive even-lag term added (Stan >= 2.18); the integrated
    autocorrelation time is floored at ``1 / log10(S)``.
    """
    chains, n = x.shape
    acov = _autocovariance(x)
    within = onp.mean(acov[:, 0]) * n / (n - 1)
    var_plus = within * (n - 1) / n
    if chains > 1:
        var_plus += onp.var(x.mean(axis=1), ddof=1)
    rho = 1.0 - (within - onp.mean(acov, axis=0)) / var_plus
    rho[0] = 1.0
    kept = onp.zeros(n)
    kept[0], kept[1] = rho[0], rho[1]
    even, odd = rho[0], rho[1]
    t = 1
    while t < n - 3 and even + odd > 0:
        even, odd = rho[t + 1], rho[t + 2]
        if even + odd >= 0:
            kept[t + 1], kept[t + 2] = even, odd
        t += 2
    last = t - 2
    if even > 0:
        kept[last + 1] = even
    t = 1
    while t <= last - 2:  # monotone pair sums
        if kept[t + 1] + kept[t + 2] > kept[t - 1] + kept[t]:
            kept[t + 1] = kept[t + 2] = (kept[t - 1] + kept[t]) / 2
        t += 2
    total = chains * n
    tau = -1.0 + 2.0 * onp.sum(kept[: last + 1]) + kept[last + 1]
    return float(total / max(tau, 1 / onp.log10(total)))


def rhat_and_ess(draws: Any) -> tuple[onp.ndarray, onp.ndarray]:
    """Rank-normalised split R-hat and bulk effective sample size of every parameter.

    Vehtari, Gelman, Simpson, Carpenter & Buerkner (2021), Bayesian Analysis 16(2): the
    draws of each chain are split in halves and replaced by the normal scores of their
    pooled ranks; R-hat is the larger of the Gelman-Rubin statistic of these scores and of
    the scores of the folded draws ``|x - median|``, and the bulk ESS is the effective
    sample size of the scores (:func:`effective_sample_size`). Works with a single chain
    (its halves are compared).

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
        folded = _rank_normalise(onp.abs(split - onp.median(split)))
        r_hat[i] = max(_gelman_rubin(scores), _gelman_rubin(folded))
        ess[i] = float(effective_sample_size(scores))
    return r_hat, ess
