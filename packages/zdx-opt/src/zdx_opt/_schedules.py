"""Learning-rate schedules."""

from __future__ import annotations

import math
import numbers

import optax


def delay(lr: float, start: int, length: int = 1) -> optax.Schedule:
    """A learning rate that is zero until step ``start``, then ramps linearly to ``lr``.

    The rate is ``0`` for ``step <= start``, ``lr * (step - start) / length`` during the
    ramp and ``lr`` from ``step = start + length`` on (``optax.linear_schedule``).
    Use it to hold some parameters still while the others settle.

    Parameters
    ----------
    lr : float
        The learning rate after the ramp.
    start : int
        The last step at which the rate is still zero (``>= 0``).
    length : int, default 1
        The number of steps of the linear ramp (``>= 1``).

    Returns
    -------
    schedule : optax.Schedule
        A function of the step count, to pass as an optax learning rate.

    Raises
    ------
    ValueError
        If ``lr`` is not finite, ``start`` is negative or ``length`` is below one.

    Examples
    --------
    >>> schedule = delay(0.1, start=10, length=5)
    >>> [float(schedule(step)) for step in (0, 10, 12, 15, 100)]
    [0.0, 0.0, 0.04000000000000001, 0.1, 0.1]
    """
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not math.isfinite(lr):
        raise ValueError(f"`lr` must be a finite real number, got {lr!r}.")
    for name, value, low in (("start", start, 0), ("length", length, 1)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ValueError(f"`{name}` must be an integer >= {low}, got {value!r}.")
    return optax.linear_schedule(0.0, lr, transition_steps=int(length), transition_begin=int(start))
