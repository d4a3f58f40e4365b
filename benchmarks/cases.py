"""What is timed: the implementations, and the suites of problems and cases.

Like ``problems.py`` this imports only JAX and Equinox at the top; ``zdx_batching`` and
zodiax 0.5.0's ``diffops`` are imported when a case needs them, so the same file serves
the environment with our packages and the one with zodiax 0.5.0 (where ``zdx_batching``
does not exist, and ``import zodiax`` is 0.5.0).

A case id names the library, the computation and its options, e.g.
``zdx.hessian[nbatches=5]``, ``zdx.hessian_fn``, ``zodiax05.hessian[nbatches=5]``,
``jax.hessian``, ``f``. Every callable that :func:`make_runner` returns makes one full call
and waits for the result: the zodiax calls (``zdx.hessian``, ``zodiax05.hessian``...) with a
new ``lambda``, as the tutorial writes them; the transforms (``zdx.hessian_fn``...) and
``jax.hessian`` created once and called again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.metadata
import io
import os
import platform
import re
import subprocess
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

__all__ = [
    "SUITES",
    "Case",
    "available_libraries",
    "blocks_chosen",
    "cases_for",
    "environment_label",
    "make_runner",
    "parse_case_id",
    "source_commit",
    "zdx_transform",
]

LIBRARIES = ("jax", "zdx", "zodiax05")


@dataclasses.dataclass(frozen=True)
class Case:
    """One implementation with its options.

    Attributes
    ----------
    library
        ``"jax"`` (``f`` itself and ``jax.hessian``), ``"zdx"`` (``zdx_batching``) or
        ``"zodiax05"`` (zodiax 0.5.0's ``diffops``).
    kind
        ``"f"`` (one evaluation of the function), ``"hessian"``, ``"fisher"`` or
        ``"diagonal"`` (``hessian_diagonal``); for ``"jax"`` also ``"checked"``: the
        least a library of pytrees adds to ``jax.hessian`` (``x``'s leaves flattened at
        each call and passed to the program, the result's diagonal checked finite), for
        ``measure.py --interleaved`` (not a case of the suite).
    nbatches
        Number of column blocks, or ``None``.
    max_memory
        The memory bound given to ``zdx_batching`` (e.g. ``"64MB"``), or ``None``.
    held
        For ``"zdx"``: the transform (``zdx_batching.hessian_fn(f, ...)``) created once and
        called again, instead of the zodiax call with a new ``lambda`` each time.
    """

    library: str
    kind: str
    nbatches: int | None = None
    max_memory: str | None = None
    held: bool = False

    @property
    def id(self) -> str:
        if self.library == "jax":
            return {"f": "f", "checked": "jax.hessian+checks"}.get(self.kind, "jax.hessian")
        name = {"diagonal": "hessian_diagonal"}.get(self.kind, self.kind)
        if self.held:
            name += "_fn"
        options = []
        if self.nbatches is not None:
            options.append(f"nbatches={self.nbatches}")
        if self.max_memory is not None:
            options.append(f"max_memory={self.max_memory}")
        suffix = f"[{','.join(options)}]" if options else ""
        return f"{self.library}.{name}{suffix}"


_CASE_ID = re.compile(r"^(zdx|zodiax05)\.(hessian|fisher|hessian_diagonal)(_fn)?(?:\[(.*)\])?$")


def parse_case_id(case_id: str) -> Case:
    """The :class:`Case` named ``case_id`` (the inverse of ``Case.id``)."""
    if case_id == "f":
        return Case("jax", "f")
    if case_id == "jax.hessian":
        return Case("jax", "hessian")
    if case_id == "jax.hessian+checks":
        return Case("jax", "checked")
    match = _CASE_ID.match(case_id)
    if not match:
        raise ValueError(f"Unknown case {case_id!r}.")
    library, name, held, options = match.groups()
    if held and library != "zdx":
        raise ValueError(f"Unknown case {case_id!r}: only zdx has transforms.")
    kind = {"hessian_diagonal": "diagonal"}.get(name, name)
    nbatches = max_memory = None
    for option in filter(None, (options or "").split(",")):
        key, _, value = option.partition("=")
        if key == "nbatches":
            nbatches = int(value)
        elif key == "max_memory":
            max_memory = value
        else:
            raise ValueError(f"Unknown option {key!r} in case {case_id!r}.")
    return Case(library, kind, nbatches, max_memory, held=bool(held))


# --------------------------------------------------------------------------------------
# Which libraries this environment has.


@functools.cache
def available_libraries() -> frozenset[str]:
    """``"jax"`` always; ``"zdx"`` where ``zdx_batching`` imports; ``"zodiax05"`` where
    the installed ``zodiax`` is the registry's 0.5.x (ours is versioned 0.5.100 and later so
    that clients pinned to 0.5 install it, and requires ``zdx-base``)."""
    found = {"jax"}
    try:
        import zdx_batching  # noqa: F401

        found.add("zdx")
    except ImportError:
        pass
    try:
        import zodiax

        requirements = importlib.metadata.requires("zodiax") or []
        ours = any(r.startswith("zdx-base") for r in requirements)
        if zodiax.__version__.startswith("0.5") and not ours:
            found.add("zodiax05")
    except ImportError:
        pass
    return frozenset(found)


def environment_label() -> str:
    """``"zdx"`` in the environment of our packages, ``"zodiax05"`` in zodiax 0.5.0's."""
    libraries = available_libraries()
    if "zdx" in libraries:
        return "zdx"
    if "zodiax05" in libraries:
        return "zodiax05"
    return "jax"


def versions() -> dict[str, str]:
    """Versions of Python and of the libraries that matter, for the results' metadata."""
    import importlib.metadata

    found = {"python": platform.python_version()}
    for dist in ("jax", "jaxlib", "equinox", "dLux", "zodiax", "zdx-batching"):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    found.setdefault("jax", jax.__version__)
    commit = source_commit()
    if commit is not None:
        found["commit"] = commit
    return found


def source_commit() -> str | None:
    """The repository's commit, with ``+changes`` when ``packages/`` holds uncommitted
    changes (an editable install runs the working tree, and its version metadata is
    only refreshed when the environment is synced); None outside a git checkout."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def git(*arguments: str) -> str:
        done = subprocess.run(
            ["git", "-C", root, *arguments], capture_output=True, text=True, timeout=30
        )
        if done.returncode != 0:
            raise OSError(done.stderr)
        return done.stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--", "packages")
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+changes" if changed else "")


# --------------------------------------------------------------------------------------
# Runners: one call each.


def _jit_on_arrays(fn: Callable, x: Any, args: Any) -> Callable[[], Any]:
    """``fn(x, args)`` compiled once with ``jax.jit``, arrays as arguments.

    The non-array parts of ``args`` (strings, ints of the dLux model) are closed over, so
    that a call costs no more than a ``jax.jit`` call.
    """
    dynamic, static = eqx.partition((x, args), eqx.is_array)
    compiled = jax.jit(lambda dyn: fn(*eqx.combine(dyn, static)))
    return lambda: jax.block_until_ready(compiled(dynamic))


def _checked_hessian(problem: Any) -> Callable[[], Any]:
    """``jax.hessian`` as the least a library of pytrees can call it: ``x``'s leaves
    flattened at each call and passed to the compiled program, which concatenates them,
    and the result's diagonal checked finite (``zdx_batching`` warns when it is not)."""
    _, unflatten = ravel_pytree(problem.x)

    def hessian_of_leaves(leaves, args):
        flat = jnp.concatenate([jnp.ravel(leaf) for leaf in leaves])
        return jax.hessian(lambda v: problem.loss_fn(unflatten(v), args))(flat)

    dynamic, static = eqx.partition(problem.args, eqx.is_array)
    compiled = jax.jit(lambda leaves, dyn: hessian_of_leaves(leaves, eqx.combine(dyn, static)))

    def call():
        result = compiled(jax.tree_util.tree_leaves(problem.x), dynamic)
        if not np.isfinite(np.asarray(result).trace()):
            raise FloatingPointError("jax.hessian+checks: the Hessian is not finite.")
        return result

    return call


def _zdx_options(case: Case) -> dict:
    options = {}
    if case.nbatches is not None:
        options["nbatches"] = case.nbatches
    if case.max_memory is not None:
        options["max_memory"] = case.max_memory
    return options


def _zdx_runner(case: Case, problem: Any) -> Callable[[], Any]:
    """The zodiax call, with a new ``lambda`` on every call, as the tutorial writes it."""
    import zdx_batching

    options = _zdx_options(case)
    x = problem.x
    if case.kind == "fisher":
        compute, function = zdx_batching.fisher, problem.residuals
    elif case.kind == "diagonal":
        compute, function = zdx_batching.hessian_diagonal, problem.loss
    else:
        compute, function = zdx_batching.hessian, problem.loss
    return lambda: jax.block_until_ready(compute(function(), x, **options)[0])


def zdx_transform(case: Case, problem: Any, **extra: Any) -> tuple[Any, tuple]:
    """``(transform, inputs)``: ``zdx_batching.hessian_fn`` (``fisher_fn``,
    ``hessian_diagonal_fn``) of the problem's function with the case's options, and the
    ``(x, args)`` to call it with.

    ``args``'s arrays are the transform's ``args``; its other leaves (the strings and
    integers of the dLux model) are closed over, as for ``jax.hessian``: a ``jax.jit``
    program takes arrays only.
    """
    import zdx_batching

    dynamic, static = eqx.partition(problem.args, eqx.is_array)
    if case.kind == "fisher":
        make, function = zdx_batching.fisher_fn, problem.residual_fn
    elif case.kind == "diagonal":
        make, function = zdx_batching.hessian_diagonal_fn, problem.loss_fn
    else:
        make, function = zdx_batching.hessian_fn, problem.loss_fn

    def f(x, arrays):
        return function(x, eqx.combine(arrays, static))

    return make(f, **_zdx_options(case), **extra), (problem.x, dynamic)


def _held_runner(case: Case, problem: Any) -> Callable[[], Any]:
    """The transform, created once and called again with the same ``x`` and ``args``."""
    transform, inputs = zdx_transform(case, problem)
    return lambda: jax.block_until_ready(transform(*inputs))


_BAR_COUNT = re.compile(r"(\d+)/(\d+)")


def blocks_chosen(case: Case, problem: Any) -> int | None:
    """How many column blocks ``zdx_batching`` runs for ``case`` on ``problem``: read from
    the progress bar of the same transform (for ``max_memory``, the search runs again),
    or None if it shows none."""
    transform, inputs = zdx_transform(case, problem, progress=True)
    shown = io.StringIO()
    with contextlib.redirect_stderr(shown):
        jax.block_until_ready(transform(*inputs))
    counts = _BAR_COUNT.findall(shown.getvalue())
    return int(counts[-1][1]) if counts else None


def _zodiax05_runner(case: Case, problem: Any) -> Callable[[], Any]:
    from zodiax import diffops

    nbatches = 1 if case.nbatches is None else case.nbatches
    x = problem.x
    if case.kind == "hessian":
        return lambda: jax.block_until_ready(diffops.hessian(problem.loss(), x, nbatches)[0])
    if case.kind == "fisher":
        # zodiax 0.5 has no Fisher matrix of its own: its batched Jacobian of the
        # residuals, then J^T J, as a zodiax 0.5 user would write it.
        def fisher():
            J, _ = diffops.jacobian(problem.residuals(), x, nbatches)
            J = J.reshape(-1, J.shape[-1])
            return jax.block_until_ready(J.T @ J)

        return fisher
    raise ValueError(f"zodiax 0.5 has no {case.kind!r}.")


def make_runner(case: Case, problem: Any) -> Callable[[], Any]:
    """A callable that makes one call of ``case`` on ``problem`` and returns its result.

    Raises
    ------
    ValueError
        If the case's library is not installed here.
    """
    if case.library not in available_libraries():
        raise ValueError(f"{case.id} needs {case.library!r}, which is not installed here.")
    if case.library == "jax":
        if case.kind == "f":
            return _jit_on_arrays(problem.loss_fn, problem.x, problem.args)
        if case.kind == "checked":
            return _checked_hessian(problem)
        flat, unflatten = ravel_pytree(problem.x)

        def flat_hessian(z, args):  # the (n, n) matrix in ravel_pytree order
            return jax.hessian(lambda v: problem.loss_fn(unflatten(v), args))(z)

        return _jit_on_arrays(flat_hessian, flat, problem.args)
    if case.library == "zdx":
        return _held_runner(case, problem) if case.held else _zdx_runner(case, problem)
    return _zodiax05_runner(case, problem)


def reference_check(case: Case, result: Any, reference: Any) -> str | None:
    """Compare a result with ``jax.hessian``'s; a message if they disagree, else None."""
    result = jnp.asarray(result)
    if not bool(jnp.all(jnp.isfinite(result))):
        return f"{case.id}: the result is not finite."
    if case.kind == "fisher":
        asymmetry = float(jnp.max(jnp.abs(result - result.T)))
        scale = float(jnp.max(jnp.abs(result)))
        return None if asymmetry <= 1e-8 * scale else f"{case.id}: not symmetric."
    if reference is None or case.kind == "f":
        return None
    expected = jnp.diag(reference) if case.kind == "diagonal" else reference
    error = float(jnp.max(jnp.abs(result - expected)))
    scale = float(jnp.max(jnp.abs(reference)))
    if error > 1e-7 * scale:
        return f"{case.id}: differs from jax.hessian by {error:.3g} (scale {scale:.3g})."
    return None


# --------------------------------------------------------------------------------------
# The suites.


@dataclasses.dataclass(frozen=True)
class Entry:
    """A problem of a suite, and what is timed on it.

    ``f``, ``jax.hessian`` and the held ``zdx_batching.hessian_fn(f)`` (default settings)
    always; ``zdx_batching.hessian`` at each of ``nbatches``
    (``None``: the default settings) and with ``max_memory`` if given;
    ``zdx_batching.fisher`` (and zodiax 0.5's Jacobian then ``J^T J``) at ``nbatches=5``
    if ``fisher``; ``zdx_batching.hessian_diagonal`` at ``nbatches=5`` if ``diagonal``;
    zodiax 0.5's ``hessian`` at each of ``nbatches_05`` (default: the same as
    ``nbatches``, leaving out ``None``).
    """

    problem: str
    n: int
    nbatches: tuple[int | None, ...] = (5,)
    max_memory: str | None = None
    fisher: bool = True
    diagonal: bool = False
    nbatches_05: tuple[int, ...] | None = None


# The cases the README's targets compare (their memory is measured even with --memory key).
KEY_CASES = frozenset(
    {
        "jax.hessian",
        "zdx.hessian[nbatches=5]",
        "zdx.fisher[nbatches=5]",
        "zodiax05.hessian[nbatches=5]",
    }
)

# "quick" is the smoke test of CI (a few minutes on two cores); "full" is the reference run
# (about ten minutes per environment on two cores). The optics problems at 64 pupil pixels
# and the smooth ones show the growth with n; the 59-parameter optics problem at 128 pupil
# pixels is the one of the README's targets; nbatches sweeps show memory against nbatches.
SUITES: dict[str, tuple[Entry, ...]] = {
    "quick": (
        Entry("optics-z7-f3-npix64", 16, (None, 5), "32MB", diagonal=True),
        Entry("smooth-n300", 300, (None, 5), fisher=False),
        Entry("separable-n1000", 1000, (None,), fisher=False),
        Entry("coupled-n300", 300, (None,), fisher=False),
    ),
    "full": (
        Entry("optics-z7-f3-npix64", 16, (None, 5)),
        Entry("optics-z50-f3-npix64", 59, (None, 5)),
        Entry("optics-z200-f3-npix64", 209, (None, 5)),
        Entry("optics-z50-f3-npix128", 59, (None, 1, 5, 59), "100MB", diagonal=True),
        Entry("smooth-n100", 100, (None, 5)),
        Entry("smooth-n300", 300, (None, 5)),
        Entry("smooth-n1000", 1000, (None, 5)),
        Entry("smooth-n3000", 3000, (None, 5, 20, 100), "200MB", diagonal=True),
        Entry("separable-n1000", 1000, (None, 5)),
        Entry("coupled-n300", 300, (None, 5)),
    ),
}


def cases_for(entry: Entry) -> list[Case]:
    """Every case of one suite entry, in the order they run (``jax.hessian`` first)."""
    cases = [Case("jax", "f"), Case("jax", "hessian"), Case("zdx", "hessian", held=True)]
    for nb in entry.nbatches:
        cases.append(Case("zdx", "hessian", nb))
    if entry.max_memory is not None:
        cases.append(Case("zdx", "hessian", None, entry.max_memory))
    if entry.fisher:
        cases.append(Case("zdx", "fisher", 5))
    if entry.diagonal:
        cases.append(Case("zdx", "diagonal", 5))
    for nb in entry.nbatches if entry.nbatches_05 is None else entry.nbatches_05:
        if nb is not None:  # zodiax 0.5's default is nbatches=1, named as such
            cases.append(Case("zodiax05", "hessian", nb))
    if entry.fisher:
        cases.append(Case("zodiax05", "fisher", 5))
    return cases
