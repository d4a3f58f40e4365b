"""Priors given as pytrees of numpyro distributions: checks, log-density and draws."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpyro.distributions as dist


def is_distribution(x: Any) -> bool:
    """True for a numpyro distribution (a leaf of a prior pytree)."""
    return isinstance(x, dist.Distribution)


def path_name(keypath: Any) -> str:
    """``"position.blue"`` for a ``jax.tree_util`` key path (``"<root>"`` for the root)."""
    parts = []
    for k in keypath:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return ".".join(parts) if parts else "<root>"


def _leaves_with_names(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> list:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)
    return [(path_name(kp), leaf) for kp, leaf in flat]


def _shape(dist_: dist.Distribution) -> tuple[int, ...]:
    return tuple(dist_.batch_shape) + tuple(dist_.event_shape)


def _base(dist_: dist.Distribution) -> dist.Distribution:
    seen = 0
    while hasattr(dist_, "base_dist") and seen < 32:
        dist_ = dist_.base_dist
        seen += 1
    return dist_


def _is_improper(dist_: dist.Distribution) -> bool:
    return isinstance(_base(dist_), dist.ImproperUniform)


class Prior:
    """A checked prior: a pytree of numpyro distributions matching the parameters.

    Built by :func:`check_prior`. ``log_density(params)`` is the sum of the
    distributions' log-densities, ``-inf`` outside their supports; ``sample(key, n)``
    draws ``n`` parameter pytrees (every leaf with a leading axis of ``n``).
    """

    def __init__(self, tree: Any, names: list[str], dists: list[dist.Distribution], treedef):
        self.tree = tree
        self.names = names
        self.dists = dists
        self.treedef = treedef

    @property
    def improper(self) -> list[str]:
        """The paths of the leaves whose distribution is improper (no normalisation)."""
        return [n for n, d in zip(self.names, self.dists) if _is_improper(d)]

    def require_proper(self, what: str) -> None:
        """Raise a ``ValueError`` when a leaf is improper, saying that ``what`` needs it."""
        bad = self.improper
        if bad:
            raise ValueError(
                f"{what} needs a proper (normalised) prior, but `prior` has an improper "
                f"distribution (ImproperUniform) at {bad}: the evidence of an improper prior "
                "is not defined. Give those parameters a proper prior, e.g. "
                "dist.Uniform(low, high) or dist.Normal(loc, scale), with .expand([...])."
            )

    def log_density(self, params: Any) -> jax.Array:
        """The log prior density of a parameter pytree (``-inf`` outside the support)."""
        leaves = self.treedef.flatten_up_to(params)
        total = jnp.zeros(())
        for d, x in zip(self.dists, leaves):
            x = jnp.asarray(x)
            inside = d.support(x)  # batch-shaped: event dimensions are reduced
            pointwise = jnp.reshape(inside, inside.shape + (1,) * len(d.event_shape))
            logp = d.log_prob(jnp.where(pointwise, x, _inside_value(d, x)))
            total = total + jnp.sum(jnp.where(inside, logp, -jnp.inf))
        return total

    def sample(self, key: jax.Array, num: int) -> Any:
        """``num`` draws of the parameters, every leaf with a leading axis of ``num``."""
        self.require_proper("Drawing from the prior")
        keys = jax.random.split(key, len(self.dists))
        leaves = [d.sample(k, (num,)) for k, d in zip(keys, self.dists)]
        return self.treedef.unflatten(leaves)

    def example(self) -> Any:
        """One parameter pytree with the right structure, shapes and float dtype (zeros)."""
        dtype = jnp.zeros(()).dtype
        return self.treedef.unflatten([jnp.zeros(_shape(d), dtype) for d in self.dists])


def _inside_value(d: dist.Distribution, x: jax.Array) -> jax.Array:
    """A point inside the support, used where ``x`` is outside so that ``log_prob`` and
    its gradient stay finite in the branch that ``jnp.where`` throws away."""
    try:
        return jnp.broadcast_to(d.mean, x.shape).astype(x.dtype)
    except Exception:
        return jnp.zeros_like(x)


def check_prior(prior: Any, params: Any = None, *, argument: str = "prior") -> Prior:
    """Check that ``prior`` is a pytree of numpyro distributions matching ``params``.

    Parameters
    ----------
    prior
        A pytree (dict, list, module...) whose leaves are numpyro distributions, one per
        leaf of ``params``, with ``batch_shape + event_shape`` equal to the leaf's shape
        (use ``dist.Normal(0, 1).expand([7])`` for a leaf of shape ``(7,)``).
    params
        The parameter pytree, or None to take the structure from ``prior`` alone.

    Returns
    -------
    Prior

    Raises
    ------
    TypeError
        If a leaf of ``prior`` is not a numpyro distribution.
    ValueError
        If the structure or a shape does not match ``params``.
    """
    named = _leaves_with_names(prior, is_leaf=is_distribution)
    if not named:
        raise ValueError(f"`{argument}` has no distributions; got {prior!r}.")
    not_dists = [(n, type(leaf).__name__) for n, leaf in named if not is_distribution(leaf)]
    if not_dists:
        raise TypeError(
            f"Every leaf of `{argument}` must be a numpyro distribution, but "
            + ", ".join(f"{n!r} is a {t}" for n, t in not_dists)
            + "."
        )
    names = [n for n, _ in named]
    dists = [d for _, d in named]
    treedef = jax.tree.structure(prior, is_leaf=is_distribution)
    if params is not None:
        param_named = _leaves_with_names(params)
        param_treedef = jax.tree.structure(params)
        if param_treedef != treedef:
            have, want = set(names), {n for n, _ in param_named}
            missing, extra = sorted(want - have), sorted(have - want)
            detail = []
            if missing:
                detail.append(f"no prior for {missing}")
            if extra:
                detail.append(f"a prior for {extra}, which `params` does not have")
            if not detail:
                detail.append(f"structure {treedef} instead of {param_treedef}")
            raise ValueError(
                f"`{argument}` does not match `params`: it has " + " and ".join(detail) + ". "
                "Give one numpyro distribution per leaf of `params`, in the same structure."
            )
        bad = []
        for (name, leaf), d in zip(param_named, dists):
            shape = tuple(jnp.shape(leaf))
            if _shape(d) != shape:
                bad.append(
                    f"{name!r}: the distribution has shape {_shape(d)}, the parameter {shape}"
                )
        if bad:
            raise ValueError(
                f"`{argument}` does not match the shapes of `params`: "
                + "; ".join(bad)
                + ". A distribution's batch_shape + event_shape must equal its parameter's "
                "shape (e.g. dist.Normal(0, 1).expand([7]) for a parameter of shape (7,))."
            )
    return Prior(prior, names, dists, treedef)
