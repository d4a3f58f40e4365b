"""Simulation-based calibration of samplers (Talts et al. 2018, arXiv:1804.06788).

Draw a truth from the prior, simulate data, sample its posterior, and record the rank of
the truth among ``L`` posterior draws. With a correct sampler the rank is uniform on
``0 .. L``; a chi-squared test on a histogram of the ranks tells when it is not.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import jax.numpy as jnp
from jax.scipy.special import gammaincc

from ._calibration import as_trials_by_parameters


def sbc_ranks(truths: Any, draws: Any) -> jnp.ndarray:
    """The rank of each true value among its posterior draws (Talts et al. 2018).

    Parameters
    ----------
    truths : array_like
        ``(trials, parameters)`` (or ``(trials,)``) the values the data were simulated from
        (each drawn from the prior).
    draws : array_like
        ``(trials, draws, parameters)`` (or ``(trials, draws)``) posterior draws of each
        trial; thin them to roughly independent draws first.

    Returns
    -------
    ranks : Array
        ``(trials, parameters)`` integers in ``0 .. draws``: how many draws are below the
        truth. Uniform for a calibrated sampler.

    Raises
    ------
    ValueError
        If the shapes do not match.

    >>> sbc_ranks([0.5, 2.0], [[0.0, 1.0, 3.0], [1.0, 1.5, 1.8]]).tolist()
    [[1], [3]]
    """
    truths = as_trials_by_parameters("sbc_ranks", "truths", truths)
    draws = jnp.asarray(draws, dtype=float)
    if draws.ndim == 2:
        draws = draws[..., None]
    if draws.ndim != 3 or draws.shape[0] != truths.shape[0] or draws.shape[2] != truths.shape[1]:
        raise ValueError(
            "sbc_ranks: `draws` must have shape (trials, draws, parameters) matching "
            f"`truths` {truths.shape}, got {draws.shape}."
        )
    return jnp.sum(draws < truths[:, None, :], axis=1)


class UniformityTest(NamedTuple):
    """A chi-squared test that ranks are uniform (:func:`rank_uniformity_test`).

    Attributes
    ----------
    statistic : Array
        ``(parameters,)`` Pearson's ``sum (observed - expected)^2 / expected`` over bins.
    pvalue : Array
        ``(parameters,)`` its chi-squared survival probability with ``bins - 1`` degrees
        of freedom.
    counts : Array
        ``(parameters, bins)`` the histogram of the ranks.
    bins : int
    """

    statistic: jnp.ndarray
    pvalue: jnp.ndarray
    counts: jnp.ndarray
    bins: int


def rank_histogram(ranks: Any, num_draws: int, bins: int) -> jnp.ndarray:
    """Histogram of ranks in ``0 .. num_draws`` over ``bins`` bins of equal width.

    ``bins`` must divide ``num_draws + 1`` so that every bin holds the same number of rank
    values (unequal bins would look non-uniform even for a perfect sampler).

    Returns
    -------
    counts : Array
        ``(parameters, bins)``.

    Raises
    ------
    ValueError
        If ``bins`` does not divide ``num_draws + 1`` or a rank is out of range.

    >>> rank_histogram([0, 1, 2, 3, 3], num_draws=3, bins=2).tolist()
    [[2, 3]]
    """
    ranks = jnp.asarray(ranks)
    if ranks.ndim == 1:
        ranks = ranks[:, None]
    for name, value in (("num_draws", num_draws), ("bins", bins)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"rank_histogram: `{name}` must be an integer >= 1, got {value!r}.")
    if (num_draws + 1) % bins:
        raise ValueError(
            f"rank_histogram: `bins`={bins} must divide num_draws + 1 = {num_draws + 1}, "
            "so that every bin holds as many possible ranks."
        )
    if bool(jnp.any((ranks < 0) | (ranks > num_draws))):
        raise ValueError(f"rank_histogram: ranks must lie in 0 .. {num_draws}.")
    width = (num_draws + 1) // bins
    which = ranks // width
    return jnp.stack(
        [jnp.sum(which[:, j][:, None] == jnp.arange(bins), axis=0) for j in range(ranks.shape[1])]
    )


def rank_uniformity_test(ranks: Any, num_draws: int, bins: int | None = None) -> UniformityTest:
    """Pearson's chi-squared test that SBC ranks are uniform, per parameter.

    Parameters
    ----------
    ranks : array_like
        ``(trials, parameters)`` from :func:`sbc_ranks`.
    num_draws : int
        Posterior draws per trial (ranks run over ``0 .. num_draws``).
    bins : int, optional
        Histogram bins, a divisor of ``num_draws + 1``; default the largest divisor that
        leaves at least 5 expected counts per bin (the usual rule for the chi-squared
        approximation), and at most 20.

    Returns
    -------
    UniformityTest
        ``statistic``, ``pvalue`` (small rejects uniformity), ``counts``, ``bins``.

    Raises
    ------
    ValueError
        As :func:`rank_histogram`, or if no valid bin count exists.
    """
    ranks = jnp.asarray(ranks)
    if ranks.ndim == 1:
        ranks = ranks[:, None]
    trials = ranks.shape[0]
    if bins is None:
        candidates = [b for b in range(2, 21) if (num_draws + 1) % b == 0 and trials / b >= 5]
        if not candidates:
            raise ValueError(
                f"rank_uniformity_test: no bin count in 2..20 divides num_draws + 1 = "
                f"{num_draws + 1} with >= 5 trials per bin ({trials} trials); choose "
                "num_draws so that num_draws + 1 has small divisors, or pass `bins`."
            )
        bins = max(candidates)
    counts = rank_histogram(ranks, num_draws, bins)
    expected = trials / bins
    statistic = jnp.sum((counts - expected) ** 2 / expected, axis=1)
    return UniformityTest(
        statistic=statistic,
        pvalue=gammaincc((bins - 1) / 2.0, statistic / 2.0),
        counts=counts,
        bins=int(bins),
    )
