"""The compiled programs of the estimators, reused under the family's one rule.

A log-likelihood enters every program as a :class:`zdx_batching.Captured`
(:func:`capture_log_likelihood`): the arrays it captures are inputs of the program and
everything else it reads is compared by equality (``zdx_batching.capture``). A
:class:`Program` is ``jax.jit`` of a module-level function, held for the whole process,
so a new ``lambda`` of the same code and equal captures runs the program compiled for the
first one, with the values of its own arrays. A call holding a capture that the rule
cannot describe (``reusable`` is False: a plain object's state, a class...) is traced by
a ``jax.jit`` of its own instead, dropped with the call: never stale, and never one more
entry in the held program's cache.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from zdx_batching import NEEDS_VALUES, Captured, CapturedJit, capture

_T = TypeVar("_T")

PROGRAMS: list[Program] = []  # every program of the package, for inspection


class Program(CapturedJit):
    """A :class:`zdx_batching.CapturedJit` of the package, listed in :data:`PROGRAMS`.

    ``static_argnames`` are hashable settings; every other argument is a pytree of arrays
    (captures included). ``compiler_options`` is a function returning XLA's compile
    options (or None), asked once, when the held program is first built.
    """

    def __init__(
        self,
        fn: Callable,
        *,
        static_argnames: tuple[str, ...] = (),
        compiler_options: Callable[[], dict | None] | None = None,
    ):
        super().__init__(fn, static_argnames=static_argnames, compiler_options=compiler_options)
        PROGRAMS.append(self)


def capture_log_likelihood(
    log_likelihood: Callable, first: Callable[[Captured], _T]
) -> tuple[Captured, _T]:
    """``log_likelihood`` captured under the family's rule, and ``first(captured)``, the
    first compiled program to use it.

    When ``log_likelihood`` needs the values of the arrays it captures
    (``np.asarray(data)``, boolean-mask indexing), which an input of a program lacks, it
    is captured again with those arrays baked into the program (compared by their bytes)
    and ``first`` runs again.
    """
    captured = capture(log_likelihood)
    try:
        return captured, first(captured)
    except NEEDS_VALUES:
        if not captured.leaves:
            raise
    captured = capture(log_likelihood, bake=True)
    return captured, first(captured)
