"""Photon counting: the Poisson log-likelihood."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jax import Array
from jax.scipy.special import gammaln

from ._checks import float_arrays


def poisson_loglike(counts: Any, rate: Any) -> Array:
    r"""The log-likelihood of a Poisson distribution, element by element.

    $\log p(k \mid \lambda) = k \log\lambda - \lambda - \log\Gamma(k + 1)$, exact (no
    Stirling or Gaussian approximation); at integer ``counts`` the same as
    ``jax.scipy.stats.poisson.logpmf(counts, rate)``. Sum it for independent pixels.

    Parameters
    ----------
    counts : Array
        The observed counts ``k``, expected ``>= 0``. Non-integer counts (averaged or
        calibrated data) use the Gamma-function continuation of the formula above.
    rate : Array
        The expected counts ``lambda`` (the model), expected ``>= 0``. Broadcasts against
        ``counts``.

    Returns
    -------
    loglike : Array
        The log-probability of every element, with the broadcast shape, in the floating
        dtype of the inputs (float64 for integer inputs when x64 is enabled).

    Raises
    ------
    ValueError
        If the shapes of ``counts`` and ``rate`` cannot be broadcast together.
    TypeError
        If an argument is not an array or a number.

    Notes
    -----
    - ``counts == 0`` gives ``-rate`` (also 0 at ``rate == 0``); ``rate == 0`` with
      ``counts > 0`` gives ``-inf``; negative ``counts`` give ``-inf`` (impossible data);
      a negative ``rate`` gives NaN. NaN in either input gives NaN in that element.
    - The gradient with respect to ``rate`` is ``counts / rate - 1``.
    - float32 keeps about 7 significant digits of each term: above about ``1e4`` counts
      per pixel the log-likelihood itself is off by more than ``1e-3``, and a sum over
      many pixels by more. Use float64 (``jax_enable_x64``) for large counts.
    - At large counts it approaches the normal log-density with mean ``rate`` and
      variance ``rate``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import zdx_stats
    >>> [round(v, 6) for v in zdx_stats.poisson_loglike(jnp.array([0, 2]), 2.0).tolist()]
    [-2.0, -1.306853]
    """
    counts, rate = float_arrays("poisson_loglike", counts=counts, rate=rate)
    zero = counts == 0
    # k log(lambda) is 0 at k = 0 whatever lambda (also 0): keep log(0) out of the values
    # and out of the gradient there.
    safe_rate = jnp.where(zero, 1, rate)
    log_term = jnp.where(zero, 0, counts * jnp.log(safe_rate))
    safe_counts = jnp.where(counts < 0, 0, counts)
    value = log_term - rate - gammaln(safe_counts + 1)
    value = jnp.where(counts < 0, -jnp.inf, value)
    return jnp.where(rate < 0, jnp.nan, value)
