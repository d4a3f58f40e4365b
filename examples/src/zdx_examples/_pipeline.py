"""The hierarchical optics fit end to end: start, natural gradient, L-BFGS, Hessian, NUTS."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx

import zdx_base
from zdx_base import checks

from ._curvature import loss_curvature
from ._error_bars import hessian_covariance
from ._fit import get_reduced_chi2, loglike_fn, loss_fn
from ._lbfgs import whitened_lbfgs
from ._natural_gradient import check_learning_rate, natural_gradient_descent
from ._result import OpticsFit
from ._run_folder import RunFolder
from ._sampling import PosteriorSamples, sample_posterior
from ._simulate import OpticsSimulation, start_params
from ._stage_recorder import StageRecorder
from ._start import StartChoice, choose_start

_FN = "fit"
_chi2r = eqx.filter_jit(get_reduced_chi2)
_loss = eqx.filter_jit(loss_fn)


def _flat_of(params: dict) -> jax.Array:
    """``params`` as one vector (``zdx_base.ravel`` order)."""
    return zdx_base.ravel(params).flat


_ARRAY = (lambda value: ({"value": value}, {}), lambda arrays, _: jnp.asarray(arrays["value"]))
"""How a stage whose result is one array is recorded and read back."""


class _Keeper:
    """Runs the stages of :func:`fit`, each recorded in a run folder when it ends (with
    its record of :class:`StageRecorder`) and read back instead of run again when found
    there; without a folder, just runs them."""

    def __init__(self, folder: Any, recorder: StageRecorder):
        self.folder = folder
        self.recorder = recorder

    def stage(self, name: str, compute: Callable, pack: Callable, unpack: Callable) -> Any:
        """``compute(stage)`` timed as the stage ``name``, or its result read back.

        ``pack(result) -> (arrays, info)`` gives what is recorded (``name -> array`` and
        JSON), ``unpack(arrays, info)`` the result again."""
        found = None if self.folder is None else self.folder.load(name)
        if found is not None:
            arrays, info = found
            self.recorder.records[name] = info.pop("stage")
            self.recorder.say(f"[{name}] read back from {self.folder.folder}")
            return unpack(arrays, info)
        with self.recorder.stage(name) as stage:
            result = compute(stage)
        if self.folder is not None:
            arrays, info = pack(result)
            self.folder.save(name, arrays, {**info, "stage": self.recorder.records[name]})
            self.folder.stop_if_asked(f"the stage {name}")
        return result


def _warn_if_above_noise(each: dict[str, float]) -> None:
    """Warn about every method whose reduced chi-squared did not come near 1."""
    for method, chi2r in each.items():
        if not chi2r < 1.5:
            warnings.warn(
                f"fit: the {method} fit has a reduced chi-squared of {chi2r:.4g}, far above "
                "1: it did not reach the noise. It may sit in a local minimum (the even "
                "aberrations with the wrong sign) or need more steps (ngd_steps, max_steps).",
                RuntimeWarning,
                stacklevel=3,
            )


def fit(
    simulation: OpticsSimulation,
    *,
    ngd_steps: int = 100,
    learning_rate: float = 0.1,
    refresh_every: int = 5,
    max_steps: int = 256,
    nuts_warmup: int = 200,
    nuts_samples: int = 200,
    nuts_chains: int = 1,
    seed: int = 0,
    progress: bool = True,
    stages: dict[str, dict] | None = None,
    resolve_signs: bool = True,
    run_folder: RunFolder | None = None,
) -> OpticsFit:
    """Fit a simulated optics data set end to end, as the tutorial's sections 4 to 7 do.

    1. ``start``: the starting guess from the data (:func:`start_params`);
    2. ``choose_start``: the sign search over the even Zernike terms
       (:func:`choose_start`): from a start without wavefront error either method can end
       in the mirror-image minimum (even aberrations with the wrong sign); the search
       picks the basin first, and both methods start from its choice;
    3. ``fisher``: the loss curvature there (:func:`loss_curvature`, built from the
       Fisher matrix);
    4. ``natural_gradient``: :func:`natural_gradient_descent` for ``ngd_steps`` steps
       (section 5);
    5. ``lbfgs``: :func:`whitened_lbfgs`, whitened by that loss curvature (section 6).
       Each method's reduced chi-squared is reported (``stages``), and a method that
       did not reach the noise is warned about; the error bars are taken at the fit
       with the lower loss;
    6. ``hessian``: :func:`hessian_covariance` at the best fit, the error bars;
    7. ``nuts``: a short NUTS run in the latent space whitened by that Hessian
       (:func:`sample_posterior`; skipped when ``nuts_samples == 0``).

    Parameters
    ----------
    simulation : OpticsSimulation
        The data, optics and truth (:func:`simulate`).
    ngd_steps : int
        Natural-gradient steps, >= 1.
    learning_rate : float
        The natural-gradient step size, in units of the Newton step, in (0, 10].
    refresh_every : int
        Recompute the natural gradient's loss curvature every this many steps.
    max_steps : int
        Most L-BFGS steps, >= 1.
    nuts_warmup, nuts_samples, nuts_chains : int
        Length of the NUTS run: warm-up and kept draws per chain (``nuts_samples == 0``
        skips sampling, otherwise >= 4), number of chains.
    seed : int
        Seed of the NUTS chains.
    progress : bool
        Show progress bars and one line per stage on standard error.
    stages : dict | None
        Stages that ran before (e.g. ``{"simulate": {"steps": ..., "seconds": ...}}``),
        put first in the result's ``stages``.
    resolve_signs : bool
        Run the ``choose_start`` sign search (default); False starts both methods from
        the data-based start, as the tutorial does.
    run_folder : RunFolder | None
        Where ``optics-fit --out`` keeps its progress: each stage from ``choose_start`` on
        is recorded there when it ends (the natural-gradient descent also every 10 steps)
        and read back instead of run again when found, so that a run stopped and started
        again ends with the same result, bit for bit, as a run never stopped.

    Returns
    -------
    result : OpticsFit

    Raises
    ------
    TypeError
        If a setting has the wrong type.
    ValueError
        If a setting is out of range, or the Hessian is not positive definite.
    RunFolderError
        (A ``ValueError``.) If a record of ``run_folder`` is damaged.
    zdx_base.CheckpointInterrupted
        After SIGINT or SIGTERM (with ``run_folder``), once the stage running is recorded
        (or, in the natural-gradient descent, its last steps).

    Warns
    -----
    RuntimeWarning
        When a method's reduced chi-squared is above 1.5: that fit did not reach the
        noise (a local minimum, or too few steps); the report still shows it.
    """
    ngd_steps = checks.check_int(_FN, "ngd_steps", ngd_steps, minimum=1)
    learning_rate = check_learning_rate(_FN, learning_rate)
    refresh_every = checks.check_int(_FN, "refresh_every", refresh_every, minimum=1)
    max_steps = checks.check_int(_FN, "max_steps", max_steps, minimum=1)
    nuts_warmup = checks.check_int(_FN, "nuts_warmup", nuts_warmup, minimum=0)
    nuts_samples = checks.check_int(_FN, "nuts_samples", nuts_samples, minimum=0)
    if 0 < nuts_samples < 4:
        raise ValueError(
            f"{_FN}: nuts_samples must be 0 (no sampling) or >= 4, got nuts_samples={nuts_samples}."
        )
    nuts_chains = checks.check_int(_FN, "nuts_chains", nuts_chains, minimum=1)
    if not jax.config.jax_enable_x64:
        warnings.warn(
            "fit: float64 is disabled; Hessians of the optics model in float32 are "
            "unreliable. Call jax.config.update('jax_enable_x64', True) first.",
            UserWarning,
            stacklevel=2,
        )
    optics, observations = simulation.optics, simulation.observations
    args = (optics, observations)
    recorder = StageRecorder(stages, progress=progress)
    names = zdx_base.scalar_names(simulation.true_params)
    keep = _Keeper(run_folder, recorder)

    with recorder.stage("start") as stage:
        start = jax.block_until_ready(start_params(observations, optics))
        stage.stop(steps=1)
        stage.note(chi2r=float(_chi2r(start, optics, observations)))
    flat = zdx_base.ravel(start)

    def search(stage):
        choice = choose_start(start, args, learning_rate=learning_rate, refresh_every=refresh_every)
        jax.block_until_ready(choice.params)
        stage.stop(steps=len(choice.losses))
        stage.note(
            chi2r=float(_chi2r(choice.params, optics, observations)), choice=choice.describe()
        )
        return choice

    choice, origin = None, start
    if resolve_signs:
        choice = keep.stage(
            "choose_start",
            search,
            lambda c: (
                {
                    "params": _flat_of(c.params),
                    "pilot": _flat_of(c.pilot),
                    "patterns": c.patterns,
                    "losses": c.losses,
                },
                {"even_terms": list(c.even_terms), "chosen": int(c.chosen)},
            ),
            lambda a, info: StartChoice(
                params=flat.unravel(jnp.asarray(a["params"])),
                data_start=start,
                pilot=flat.unravel(jnp.asarray(a["pilot"])),
                even_terms=tuple(info["even_terms"]),
                patterns=jnp.asarray(a["patterns"]),
                losses=jnp.asarray(a["losses"]),
                chosen=info["chosen"],
            ),
        )
        origin = choice.params

    def fisher(stage):
        curvature = loss_curvature(origin, optics, observations, progress=progress)
        stage.stop(steps=len(names))
        return jax.block_until_ready(curvature)

    curvature = keep.stage("fisher", fisher, *_ARRAY)

    def descend(stage):
        found = natural_gradient_descent(
            origin,
            args,
            steps=ngd_steps,
            learning_rate=learning_rate,
            refresh_every=refresh_every,
            progress=progress,
            checkpoint=None if run_folder is None else run_folder.path("natural_gradient_steps"),
        )
        stage.stop(steps=found[1].size)
        stage.note(chi2r=float(_chi2r(found[0], optics, observations)))
        return found

    ngd_params, ngd_losses, ngd_history = keep.stage(
        "natural_gradient",
        descend,
        lambda r: ({"params": _flat_of(r[0]), "losses": r[1], "history": r[2]}, {}),
        lambda a, _: (
            flat.unravel(jnp.asarray(a["params"])),
            jnp.asarray(a["losses"]),
            jnp.asarray(a["history"]),
        ),
    )

    def lbfgs(stage):
        solution, losses = whitened_lbfgs(
            origin, args, curvature, max_steps=max_steps, progress=progress
        )
        stage.stop(steps=int(solution.num_steps))
        converged = solution.result == optx.RESULTS.successful
        stage.note(
            chi2r=float(_chi2r(solution.params, optics, observations)),
            result="successful" if converged else "max_steps or failure",
        )
        return solution.params, losses

    lbfgs_params, lbfgs_losses = keep.stage(
        "lbfgs",
        lbfgs,
        lambda r: ({"params": _flat_of(r[0]), "losses": r[1]}, {}),
        lambda a, _: (flat.unravel(jnp.asarray(a["params"])), jnp.asarray(a["losses"])),
    )
    ngd_loss = float(_loss(ngd_params, args))
    lbfgs_loss = float(_loss(lbfgs_params, args))
    best_method = "lbfgs" if not ngd_loss < lbfgs_loss else "natural_gradient"
    best = lbfgs_params if best_method == "lbfgs" else ngd_params
    each = {
        "natural_gradient": recorder.records["natural_gradient"]["chi2r"],
        "lbfgs": recorder.records["lbfgs"]["chi2r"],
    }
    recorder.say(f"error bars at the fit of {best_method}, chi2r {each[best_method]:.6g}")
    _warn_if_above_noise(each)

    def error_bars(stage):
        found = hessian_covariance(best, args, progress=progress)
        stage.stop(steps=len(names))
        return found

    hessian, covariance = keep.stage(
        "hessian",
        error_bars,
        lambda r: ({"hessian": r[0], "covariance": r[1]}, {}),
        lambda a, _: (jnp.asarray(a["hessian"]), jnp.asarray(a["covariance"])),
    )

    samples = None
    if nuts_samples:

        def log_likelihood(p):  # a plain function: the sampler may hash what it compiles
            return loglike_fn(p, args)

        def sample(stage):
            found = sample_posterior(
                log_likelihood,
                best,
                hessian,
                num_warmup=nuts_warmup,
                num_samples=nuts_samples,
                num_chains=nuts_chains,
                seed=seed,
                progress=progress,
            )
            stage.stop(steps=(nuts_warmup + nuts_samples) * nuts_chains)
            stage.note(
                backend=found.backend,
                max_r_hat=float(jnp.max(found.r_hat)),
                min_ess_bulk=float(jnp.min(found.ess_bulk)),
                divergences=found.divergences,
            )
            return found

        samples = keep.stage(
            "nuts",
            sample,
            lambda r: (
                {"draws": r.draws, "r_hat": r.r_hat, "ess_bulk": r.ess_bulk},
                {"divergences": r.divergences, "backend": r.backend},
            ),
            lambda a, info: PosteriorSamples(
                draws=jnp.asarray(a["draws"]),
                names=names,
                r_hat=jnp.asarray(a["r_hat"]),
                ess_bulk=jnp.asarray(a["ess_bulk"]),
                divergences=info["divergences"],
                backend=info["backend"],
            ),
        )

    return OpticsFit(
        simulation=simulation,
        start=start,
        ngd_params=ngd_params,
        lbfgs_params=lbfgs_params,
        params=best,
        best_method=best_method,
        loss_curvature=curvature,
        hessian=hessian,
        covariance=covariance,
        names=names,
        ngd_losses=ngd_losses,
        ngd_history=ngd_history,
        lbfgs_losses=lbfgs_losses,
        samples=samples,
        stages=recorder.records,
        start_choice=choice,
    )
