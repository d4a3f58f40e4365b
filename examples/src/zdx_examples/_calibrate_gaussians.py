"""Simulation-based calibration of the samplers on the sum-of-Gaussians model.

Talts et al. (2018): draw the parameters from the prior, simulate data from them, sample
the posterior of that data, and count how many posterior draws lie below the true value.
When the sampler draws from the right posterior, the count (the rank) is uniform on
``0 .. L`` for ``L`` draws, whatever the model; a rank histogram that is U-shaped,
humped or tilted shows posteriors too narrow, too wide or biased.
"""

from __future__ import annotations

import contextlib
import pathlib
import sys
import time
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as onp
import numpyro.distributions as dist
from tqdm.auto import tqdm

import zdx_sample
import zdx_stats

from ._gaussians import GaussianModel
from ._run_folder import open_run_folder
from ._settings import SBC_DEFAULTS as SBC_DEFAULTS
from ._settings import with_defaults

SAMPLERS = ("nuts", "mams", "nested_sampling")
"""The samplers ``calibrate gaussians --samplers`` can name: ``mams`` is ``zdx_sample.nuts``
with ``method="mams"``, run with the same warm-up and thinning as ``nuts``."""


def gaussian_prior() -> dict:
    """The prior of the SBC experiment, centred on the tutorial's values.

    Normal laws (numpyro): ``mean ~ N((2, -3), 0.2)``, ``std ~ N((0.5, 2), (0.05,
    0.2))``, ``power ~ N((1.5, 1), 0.1)``: proper (nested sampling draws from it), and
    narrow enough that the two components stay apart and positive.
    """
    return {
        "mean": dist.Normal(jnp.array([2.0, -3.0]), 0.2),
        "std": dist.Normal(jnp.array([0.5, 2.0]), jnp.array([0.05, 0.2])),
        "power": dist.Normal(jnp.array([1.5, 1.0]), 0.1),
    }


class GaussianLogLikelihood(eqx.Module):
    """``params -> log N(data | model(params), error)`` summed over the grid."""

    model: GaussianModel
    data: jax.Array
    error: jax.Array

    def __call__(self, params: dict) -> jax.Array:
        return zdx_stats.loglike(self.model(params), self.data, self.error).sum()


def draw_truth(prior: dict, key: jax.Array) -> dict:
    """One draw of every parameter from ``prior``."""
    keys = jr.split(key, len(prior))
    return {name: law.sample(k) for k, (name, law) in zip(keys, prior.items())}


def _flat(tree: dict) -> jax.Array:
    return jnp.concatenate([jnp.atleast_1d(tree[k]) for k in sorted(tree)], axis=-1)


def _flat_draws(tree: dict) -> jax.Array:
    return jnp.concatenate([tree[k].reshape(tree[k].shape[0], -1) for k in sorted(tree)], 1)


def _replication(s: dict, chosen: list[str], prior: dict, template: Any, i: int) -> dict:
    """Replication ``i`` of :func:`sbc_gaussians`: its record (``truth`` and the rank of
    each sampler) and, as JSON, the seconds of each sampler and the parameter names."""
    draws, nuts_thin, error = s["draws"], s["nuts_thin"], s["error"]
    key = jr.fold_in(jr.key(s["seed"]), i)
    truth = draw_truth(prior, jr.fold_in(key, 0))
    clean = template(truth)
    data = clean + error * jr.normal(jr.fold_in(key, 1), clean.shape)
    loglike = GaussianLogLikelihood(template, data, jnp.asarray(error, float))
    flat_truth = _flat(truth)
    arrays = {"truth": onp.asarray(flat_truth)}
    seconds, names = {}, None
    for method in chosen:
        clock = time.perf_counter()
        if method == "nested_sampling":
            result = zdx_sample.nested_sampling(
                loglike,
                prior,
                key=jr.fold_in(key, 3),
                num_live=s["num_live"],
                num_samples=draws,
                progress=False,
            )
            sample = _flat_draws(result.samples)
        else:
            result = zdx_sample.nuts(
                loglike,
                truth,
                prior,
                num_warmup=s["nuts_warmup"],
                num_samples=draws * nuts_thin,
                key=jr.fold_in(key, 2),
                progress=False,
                optimise=True,
                method=method,
            )
            sample = _flat_draws(result.samples)[::nuts_thin]
        arrays[method] = onp.asarray(zdx_stats.sbc_ranks(flat_truth[None], sample[None])[0])
        seconds[method] = time.perf_counter() - clock
        names = names or list(result.names)
    return {"arrays": arrays, "info": {"seconds": seconds, "names": names}}


def sbc_gaussians(
    progress: bool = True,
    out: str | pathlib.Path | None = None,
    restart: bool = False,
    process_id: int = 0,
    num_processes: int = 1,
    **settings: Any,
) -> dict[str, Any]:
    """Simulation-based calibration of ``zdx_sample.nuts`` (NUTS or MAMS) and
    ``nested_sampling``.

    For each of ``n`` replications: a truth from :func:`gaussian_prior`, data on
    ``nsamples`` grid points with Gaussian noise ``error``, then for each sampler
    ``draws`` posterior draws and the rank of the truth among them
    (``zdx_stats.sbc_ranks``). NUTS starts at the posterior mode (``optimise=True`` from
    the truth, so that no chain is lost to a far start), runs ``nuts_warmup`` steps and
    keeps every ``nuts_thin``-th of ``draws * nuts_thin`` draws (thinning makes the draws
    nearly independent, which the uniformity test assumes); ``mams`` is the same call with
    ``method="mams"``; nested sampling runs with
    ``num_live`` live points and returns ``draws`` equally weighted draws.

    With ``out``, every finished replication is recorded in ``out/progress/`` (see
    ``_run_folder``): run again with the same settings, the replications recorded there
    are loaded, not sampled again, and the summary is the same, bit for bit apart from the
    ``seconds``, as that of a run never stopped. Several processes sharing ``out`` each
    sample every ``num_processes``-th replication; process 0 waits for all and returns the
    summary, the same as one process's.

    Parameters
    ----------
    progress : bool
        A progress bar over the replications and a line per sampler on standard error.
    out : str or Path, optional
        The folder that keeps the progress (and, from the command, the report).
    restart : bool
        Discard the progress kept in ``out`` and start over.
    process_id, num_processes : int
        This process's index and how many processes share the replications (through
        ``out``).
    **settings
        Any of :data:`SBC_DEFAULTS`: ``n``, ``nsamples``, ``error``, ``seed``, ``draws``,
        ``nuts_warmup``, ``nuts_thin``, ``num_live`` and ``samplers`` (comma-separated
        names of :data:`SAMPLERS`).

    Returns
    -------
    summary : dict
        Per sampler: ``ranks`` ``(n, 6)``, the uniformity test per parameter
        (``pvalue``, ``statistic``, ``counts``, ``bins``), the smallest p-value, its
        Bonferroni-corrected value over the 6 parameters, ``seconds``; and the settings.
        A process other than 0 returns only its index and how many replications it
        recorded.

    Raises
    ------
    TypeError
        For an unknown setting.
    ValueError
        If ``samplers`` names no sampler or one not in :data:`SAMPLERS`, or several
        processes run without ``out``.
    RunFolderError
        (A ``ValueError``.) If ``out`` holds the progress of other settings (without ``restart``).
    zdx_base.CheckpointInterrupted
        After SIGINT or SIGTERM, once the replication being sampled is recorded (with
        ``out``).
    """
    s = with_defaults("sbc_gaussians", SBC_DEFAULTS, settings)
    samplers = s["samplers"]
    chosen = [name.strip() for name in samplers.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(SAMPLERS))
    if unknown or not chosen:
        raise ValueError(
            f"sbc_gaussians: `samplers` must be a comma-separated list of {SAMPLERS}, "
            f"got {samplers!r}."
        )
    chosen = [name for name in SAMPLERS if name in chosen]
    s = {**s, "samplers": ",".join(chosen)}
    folder = open_run_folder("calibrate gaussians", out, s, restart, process_id, num_processes)
    n, draws = s["n"], s["draws"]
    prior = gaussian_prior()
    template = GaussianModel(mean=[2, -3], std=[0.5, 2], power=[1.5, 1], nsamples=s["nsamples"])
    labels = [f"replication_{i:06d}" for i in range(n)]
    mine = range(n) if folder is None else folder.share(n)
    records = []
    bar = tqdm(mine, desc="SBC replications", unit="rep", disable=not progress)
    guard = contextlib.nullcontext() if folder is None else folder.interruptible()
    with guard:
        for count, i in enumerate(bar, 1):
            found = None if folder is None else folder.load(labels[i])
            if found is None:
                done = _replication(s, chosen, prior, template, i)
                found = done["arrays"], done["info"]
                if folder is not None:
                    folder.save(labels[i], *found)
            records.append(found)
            if folder is not None:
                folder.stop_if_asked(f"{count} of the {len(mine)} replications of this process")
    bar.close()
    if folder is not None:
        records = folder.gather(labels, say=bar.write if progress else None)
        if records is None:
            return folder.left_to_process_0(len(mine))
    truths = [records[i][0]["truth"] for i in range(n)]
    ranks = {m: [records[i][0][m] for i in range(n)] for m in chosen}
    seconds = {m: sum(records[i][1]["seconds"][m] for i in range(n)) for m in chosen}
    names = records[0][1]["names"]
    summary: dict[str, Any] = {
        "settings": s,
        "names": list(names),
        "truths": onp.asarray(jnp.stack(truths)).tolist(),
    }
    for name in chosen:
        rank_array = jnp.stack(ranks[name])
        try:
            test = zdx_stats.rank_uniformity_test(rank_array, draws)
        except ValueError as error:  # too few replications for the chi-squared test
            summary[name] = {
                "ranks": onp.asarray(rank_array).tolist(),
                "test": None,
                "note": str(error),
                "seconds": round(seconds[name], 2),
            }
            continue
        smallest = float(jnp.min(test.pvalue))
        summary[name] = {
            "test": "chi-squared on the rank histogram",
            "ranks": onp.asarray(rank_array).tolist(),
            "pvalue": onp.asarray(test.pvalue).tolist(),
            "statistic": onp.asarray(test.statistic).tolist(),
            "counts": onp.asarray(test.counts).tolist(),
            "bins": test.bins,
            "min_pvalue": smallest,
            "min_pvalue_bonferroni": min(1.0, smallest * rank_array.shape[1]),
            "uniform_at_1_percent": bool(smallest * rank_array.shape[1] >= 0.01),
            "seconds": round(seconds[name], 2),
        }
        if progress:  # pragma: no cover - output only
            print(
                f"[{name}] SBC uniformity p-values {onp.round(onp.asarray(test.pvalue), 3)}, "
                f"{seconds[name]:.0f} s",
                file=sys.stderr,
            )
    return summary
