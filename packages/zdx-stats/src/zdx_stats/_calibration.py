"""Are error bars calibrated? Coverage and pulls over many simulated data sets.

Coverage: over many simulated data sets with known truth, the fraction of fits whose
truth lies within ``k`` of their own one-sigma errors must be the Gaussian probability of
``|Z| < k`` (68.3 % for one sigma, 95.4 % for two), up to the binomial uncertainty
``sqrt(p (1 - p) / N)`` of a fraction of ``N`` trials. Pulls ``(fit - truth) / sigma``
must then be draws of ``N(0, 1)``: mean 0, standard deviation 1, and normal (the
D'Agostino-Pearson test of skewness and kurtosis).

The simulation-based calibration of samplers is in :mod:`zdx_stats._sbc`, the figures in
:mod:`zdx_stats._calibration_plots`.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax.numpy as jnp
from jax.scipy.special import erf


def nominal_coverage(level: Any) -> jnp.ndarray:
    """The probability that a normal draw lies within ``level`` standard deviations.

    ``erf(level / sqrt(2))``: 0.6827 for 1, 0.9545 for 2, 0.9973 for 3.

    >>> round(float(nominal_coverage(1.0)), 4), round(float(nominal_coverage(2.0)), 4)
    (0.6827, 0.9545)
    """
    return erf(jnp.asarray(level, float) / math.sqrt(2.0))


def as_trials_by_parameters(function: str, name: str, value: Any) -> jnp.ndarray:
    array = jnp.asarray(value, dtype=float)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] < 1:
        raise ValueError(
            f"{function}: `{name}` must have shape (trials,) or (trials, parameters), "
            f"got {array.shape}."
        )
    return array


def pulls(estimates: Any, truths: Any, sigmas: Any) -> jnp.ndarray:
    """``(estimate - truth) / sigma`` per trial and parameter.

    Parameters
    ----------
    estimates : array_like
        ``(trials, parameters)`` (or ``(trials,)``) the fitted values.
    truths : array_like
        The true values: the same shape, or ``(parameters,)`` when one truth serves every
        trial.
    sigmas : array_like
        The one-sigma errors of the estimates, same shape as ``estimates``, all > 0.

    Returns
    -------
    pulls : Array
        ``(trials, parameters)``.

    Raises
    ------
    ValueError
        If the shapes do not match or a sigma is not positive.

    >>> pulls([[1.0, 2.0]], [0.0, 0.0], [[0.5, 4.0]]).tolist()
    [[2.0, 0.5]]
    """
    estimates = as_trials_by_parameters("pulls", "estimates", estimates)
    sigmas = as_trials_by_parameters("pulls", "sigmas", sigmas)
    truths = jnp.asarray(truths, dtype=float)
    if truths.ndim == 1 and truths.shape[0] == estimates.shape[1] and estimates.shape[1] > 1:
        truths = jnp.broadcast_to(truths, estimates.shape)
    truths = as_trials_by_parameters("pulls", "truths", truths)
    if not (estimates.shape == sigmas.shape == truths.shape):
        raise ValueError(
            "pulls: `estimates`, `truths` and `sigmas` must have the same shape (or truths "
            f"one per parameter), got {estimates.shape}, {truths.shape} and {sigmas.shape}."
        )
    if not bool(jnp.all(sigmas > 0)):
        raise ValueError("pulls: every entry of `sigmas` must be > 0.")
    return (estimates - truths) / sigmas


class Coverage(NamedTuple):
    """Coverage of error bars at several levels (:func:`coverage`).

    Attributes
    ----------
    levels : Array
        ``(k,)`` the half-widths, in sigmas.
    nominal : Array
        ``(k,)`` the coverage a calibrated estimator has, :func:`nominal_coverage`.
    per_parameter : Array
        ``(k, parameters)`` the fraction of trials within each level, per parameter.
    overall : Array
        ``(k,)`` the same over every trial and parameter together.
    error_per_parameter : Array
        ``(k,)`` the binomial standard error ``sqrt(p (1 - p) / trials)`` of a
        per-parameter fraction, ``p`` the nominal coverage.
    error_overall : Array
        ``(k,)`` the same for ``trials * parameters`` values (exact when the parameters of
        a trial are independent, too small when they are correlated).
    trials : int
        The number of trials.
    """

    levels: jnp.ndarray
    nominal: jnp.ndarray
    per_parameter: jnp.ndarray
    overall: jnp.ndarray
    error_per_parameter: jnp.ndarray
    error_overall: jnp.ndarray
    trials: int

    def deviation(self) -> jnp.ndarray:
        """``(k, parameters)`` ``(per_parameter - nominal) / error_per_parameter``."""
        return (self.per_parameter - self.nominal[:, None]) / self.error_per_parameter[:, None]


def coverage(pull_values: Any, levels: Any = (1.0, 2.0)) -> Coverage:
    """How often the truth lies within ``level`` sigmas, against the nominal probability.

    Parameters
    ----------
    pull_values : array_like
        ``(trials, parameters)`` (or ``(trials,)``) pulls ``(fit - truth) / sigma``
        (:func:`pulls`).
    levels : sequence of float, default (1, 2)
        Half-widths of the intervals, in sigmas, > 0.

    Returns
    -------
    Coverage

    Raises
    ------
    ValueError
        If ``pull_values`` has the wrong shape or holds non-finite values, or a level is
        not positive.

    >>> cov = coverage([0.5, -1.5, 0.2, 2.5], levels=[1.0, 2.0])
    >>> cov.per_parameter[:, 0].tolist(), cov.trials
    ([0.5, 0.75], 4)
    """
    values = as_trials_by_parameters("coverage", "pull_values", pull_values)
    if not bool(jnp.all(jnp.isfinite(values))):
        raise ValueError("coverage: `pull_values` must be finite.")
    levels = jnp.atleast_1d(jnp.asarray(levels, dtype=float))
    if levels.ndim != 1 or not bool(jnp.all(levels > 0)):
        raise ValueError(f"coverage: `levels` must be positive numbers, got {levels}.")
    trials, params = values.shape
    inside = jnp.abs(values)[None] <= levels[:, None, None]
    nominal = nominal_coverage(levels)
    spread = jnp.sqrt(nominal * (1 - nominal))
    return Coverage(
        levels=levels,
        nominal=nominal,
        per_parameter=inside.mean(axis=1),
        overall=inside.mean(axis=(1, 2)),
        error_per_parameter=spread / math.sqrt(trials),
        error_overall=spread / math.sqrt(trials * params),
        trials=int(trials),
    )


class NormalityTest(NamedTuple):
    """The D'Agostino-Pearson test (:func:`normality_test`).

    Attributes
    ----------
    statistic : Array
        ``K^2 = Z_skew^2 + Z_kurtosis^2``, chi-squared with 2 degrees of freedom under
        normality.
    pvalue : Array
        ``exp(-K^2 / 2)``.
    """

    statistic: jnp.ndarray
    pvalue: jnp.ndarray


def _skew_z(x: jnp.ndarray) -> jnp.ndarray:
    # D'Agostino (1970): the sample skewness made normal.
    n = x.shape[0]
    d = x - x.mean()
    b1 = jnp.mean(d**3) / jnp.mean(d**2) ** 1.5
    y = b1 * math.sqrt((n + 1) * (n + 3) / (6.0 * (n - 2)))
    beta2 = (
        3.0 * (n * n + 27 * n - 70) * (n + 1) * (n + 3) / ((n - 2.0) * (n + 5) * (n + 7) * (n + 9))
    )
    w2 = -1 + math.sqrt(2 * (beta2 - 1))
    delta = 1 / math.sqrt(0.5 * math.log(w2))
    alpha = math.sqrt(2.0 / (w2 - 1))
    y = jnp.where(y == 0, 1.0, y)
    return delta * jnp.log(y / alpha + jnp.sqrt((y / alpha) ** 2 + 1))


def _kurtosis_z(x: jnp.ndarray) -> jnp.ndarray:
    # Anscombe and Glynn (1983): the sample kurtosis made normal.
    n = x.shape[0]
    d = x - x.mean()
    b2 = jnp.mean(d**4) / jnp.mean(d**2) ** 2
    mean = 3.0 * (n - 1) / (n + 1)
    var = 24.0 * n * (n - 2) * (n - 3) / ((n + 1.0) ** 2 * (n + 3) * (n + 5))
    z = (b2 - mean) / math.sqrt(var)
    root_beta1 = (
        6.0
        * (n * n - 5 * n + 2)
        / ((n + 7.0) * (n + 9))
        * math.sqrt(6.0 * (n + 3) * (n + 5) / (n * (n - 2.0) * (n - 3)))
    )
    a = 6.0 + 8.0 / root_beta1 * (2.0 / root_beta1 + math.sqrt(1 + 4.0 / root_beta1**2))
    term1 = 1 - 2 / (9.0 * a)
    denom = 1 + z * math.sqrt(2 / (a - 4.0))
    term2 = jnp.sign(denom) * jnp.cbrt((1 - 2.0 / a) / jnp.abs(denom))
    term2 = jnp.where(denom == 0, jnp.nan, term2)
    return (term1 - term2) / math.sqrt(2 / (9.0 * a))


def normality_test(values: Any) -> NormalityTest:
    """D'Agostino and Pearson's omnibus test that ``values`` come from a normal law.

    Combines the normalised sample skewness (D'Agostino 1970) and kurtosis (Anscombe and
    Glynn 1983) into ``K^2``, chi-squared with two degrees of freedom when the values are
    normal. The same numbers as ``scipy.stats.normaltest``.

    Parameters
    ----------
    values : array_like
        ``(n,)`` with ``n >= 20`` finite values.

    Returns
    -------
    NormalityTest
        ``statistic`` and ``pvalue``; a small p-value rejects normality.

    Raises
    ------
    ValueError
        If ``values`` is not 1-D, has fewer than 20 entries, or holds non-finite values.
    """
    x = jnp.asarray(values, dtype=float)
    if x.ndim != 1 or x.shape[0] < 20:
        raise ValueError(
            f"normality_test: `values` must be 1-D with at least 20 entries, got shape {x.shape}."
        )
    if not bool(jnp.all(jnp.isfinite(x))):
        raise ValueError("normality_test: `values` must be finite.")
    k2 = _skew_z(x) ** 2 + _kurtosis_z(x) ** 2
    return NormalityTest(statistic=k2, pvalue=jnp.exp(-k2 / 2))


class PullStatistics(NamedTuple):
    """Summary of pulls per parameter and overall (:func:`pull_statistics`).

    Attributes
    ----------
    mean, std : Array
        ``(parameters,)`` the sample mean and standard deviation (``ddof=1``) of each
        parameter's pulls; 0 and 1 for calibrated errors.
    mean_error, std_error : Array
        ``(parameters,)`` their standard errors for normal pulls: ``std / sqrt(n)`` and
        ``std / sqrt(2 (n - 1))``.
    normality_pvalue : Array
        ``(parameters,)`` :func:`normality_test` p-values (NaN with fewer than 20 trials).
    overall_mean, overall_std, overall_normality_pvalue : Array
        The same for every pull together.
    """

    mean: jnp.ndarray
    std: jnp.ndarray
    mean_error: jnp.ndarray
    std_error: jnp.ndarray
    normality_pvalue: jnp.ndarray
    overall_mean: jnp.ndarray
    overall_std: jnp.ndarray
    overall_normality_pvalue: jnp.ndarray


def pull_statistics(pull_values: Any) -> PullStatistics:
    """Mean, standard deviation and normality of pulls, per parameter and overall.

    Parameters
    ----------
    pull_values : array_like
        ``(trials, parameters)`` (or ``(trials,)``) pulls, at least 2 trials.

    Returns
    -------
    PullStatistics

    Raises
    ------
    ValueError
        With fewer than 2 trials or non-finite pulls.

    >>> stats = pull_statistics([[-1.0], [0.0], [1.0]])
    >>> float(stats.mean[0]), float(stats.std[0])
    (0.0, 1.0)
    """
    values = as_trials_by_parameters("pull_statistics", "pull_values", pull_values)
    trials = values.shape[0]
    if trials < 2 or not bool(jnp.all(jnp.isfinite(values))):
        raise ValueError(
            "pull_statistics: `pull_values` needs at least 2 trials of finite values, "
            f"got shape {values.shape}."
        )
    std = values.std(axis=0, ddof=1)

    def pvalue(x):
        return normality_test(x).pvalue if x.shape[0] >= 20 else jnp.asarray(jnp.nan)

    flat = values.ravel()
    return PullStatistics(
        mean=values.mean(axis=0),
        std=std,
        mean_error=std / math.sqrt(trials),
        std_error=std / math.sqrt(2 * (trials - 1)),
        normality_pvalue=jnp.stack([pvalue(values[:, j]) for j in range(values.shape[1])]),
        overall_mean=flat.mean(),
        overall_std=flat.std(ddof=1),
        overall_normality_pvalue=pvalue(flat),
    )
