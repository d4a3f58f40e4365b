"""Learning-rate schedules."""

from __future__ import annotations

import optax

from zdx_base import checks


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
    TypeError
        If ``lr`` is not a real number, or ``start`` or ``length`` not an integer.
    ValueError
        If ``lr`` is not finite, ``start`` is negative or ``length`` is below one.

    Examples
    --------
    >>> schedule = delay(0.1, start=10, length=5)
    >>> [float(schedule(step)) for step in (0, 10, 12, 15, 100)]
    [0.0, 0.0, 0.04000000000000001, 0.1, 0.1]
    """
    lr = checks.check_number("delay", "lr", lr)
    start = checks.check_int("delay", "start", start, minimum=0)
    length = checks.check_int("delay", "length", length, minimum=1)
    return optax.linear_schedule(0.0, lr, transition_steps=length, transition_begin=start)
