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

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import jax

from zdx_batching import Captured, capture

_T = TypeVar("_T")

# Raised while tracing when a function needs the value of an array it captures.
_NEEDS_CONCRETE = (
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerArrayConversionError,
    jax.errors.TracerIntegerConversionError,
    jax.errors.NonConcreteBooleanIndexError,
)


PROGRAMS: list[Program] = []  # every program of the package, for inspection


def _is_capture(value: Any) -> bool:
    return isinstance(value, Captured)


def reusable(tree: Any) -> bool:
    """Whether every :class:`zdx_batching.Captured` in ``tree`` is reusable."""
    found = jax.tree_util.tree_leaves(tree, is_leaf=_is_capture)
    return all(leaf.reusable for leaf in found if _is_capture(leaf))


class Program:
    """``fn`` compiled with ``jax.jit``: held for reusable inputs, fresh for the others.

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
        self.fn = fn
        self.static_argnames = static_argnames
        self._compiler_options = compiler_options
        PROGRAMS.append(self)

    @functools.cached_property
    def options(self) -> dict | None:
        """The compile options, asked once."""
        return None if self._compiler_options is None else self._compiler_options()

    def _jit(self, fn: Callable) -> Callable:
        return jax.jit(fn, static_argnames=self.static_argnames, compiler_options=self.options)

    @functools.cached_property
    def held(self) -> Callable:
        """The program shared by every call whose captures are reusable."""
        return self._jit(self.fn)

    def fresh(self) -> Callable:
        """A program of its own (traced at its first call, dropped with it)."""

        @functools.wraps(self.fn)
        def traced_afresh(*args: Any, **kwargs: Any) -> Any:
            return self.fn(*args, **kwargs)

        return self._jit(traced_afresh)

    def for_inputs(self, *trees: Any) -> Callable:
        """The program for calls with the captures in ``trees``."""
        return self.held if reusable(trees) else self.fresh()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.for_inputs(args, kwargs)(*args, **kwargs)


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
    except _NEEDS_CONCRETE:
        if not captured.leaves:
            raise
    captured = capture(log_likelihood, bake=True)
    return captured, first(captured)
