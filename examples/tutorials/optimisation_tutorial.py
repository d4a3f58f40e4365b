# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Optimising models with the zodiax family
#
# The zodiax optimisation tutorial, step by step, on this project's packages:
#
# 1. gradient descent with optax, one optimiser per parameter (`zdx_opt.map_optimisers`);
# 2. BFGS with optimistix;
# 3. uncertainties from a batched Hessian (`zdx_batching.hessian`);
# 4. a hierarchical optical model built on dLux (`zdx_examples.optics`);
# 5. natural-gradient descent (`zdx_opt.natural_gradient`, `zdx_batching.fisher`);
# 6. L-BFGS in a whitened parametrisation, in one call (`zdx_opt.minimise`);
# 7. posterior sampling with NUTS in the whitened space (`zdx_sample.nuts`).
#
# Run it as a notebook (`jupytext --to notebook optimisation_tutorial.py`) or as a
# script: `python examples/tutorials/optimisation_tutorial.py`. Set
# `ZDX_TUTORIAL_QUICK=1` for small sizes (a minute or two on a laptop) and
# `ZDX_TUTORIAL_FIGURES=folder` to save every figure there.

# %%
# ruff: noqa: E402  (float64 is switched on before the other imports)
import os
import pathlib

import jax

# Hessians of physical models need float64: turn it on before anything else runs.
jax.config.update("jax_enable_x64", True)

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import optax
import optimistix as optx
from jax.flatten_util import ravel_pytree
from tqdm.auto import tqdm

import zdx_base
import zdx_batching
import zdx_opt
import zdx_stats
from zdx_examples import gaussians, plots
from zdx_examples import optics as ex

QUICK = os.environ.get("ZDX_TUTORIAL_QUICK", "") not in ("", "0")
FIGURES = os.environ.get("ZDX_TUTORIAL_FIGURES")
NPIX = 64 if QUICK else 256  # pupil pixels across (the tutorial's 256)
N_IMAGES = 300 if QUICK else 1000  # exposures averaged per filter
GD_STEPS = 50 if QUICK else 200
NGD_STEPS = 60 if QUICK else 100
NUTS_WARMUP, NUTS_SAMPLES = (100, 100) if QUICK else (500, 1000)


def show(fig, name):
    """Save a figure when ZDX_TUTORIAL_FIGURES is set; display it in a notebook."""
    if FIGURES:
        folder = pathlib.Path(FIGURES)
        folder.mkdir(parents=True, exist_ok=True)
        fig.savefig(folder / f"{name}.png", dpi=100)
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    if get_ipython() is not None:
        display(fig)


# %% [markdown]
# ## 1. Gradient descent with optax
#
# A sum of two (powered) Gaussians on a grid, with Gaussian noise: `gaussians.simulate()`
# makes the tutorial's data (same seeds, same numbers) and `gaussians.init_params` its
# perturbed starting guess. The loss is the mean squared z-score.
#
# `zdx_opt.map_optimisers` gives each parameter its own optax optimiser: a tuple of names
# shares one, and `zdx_opt.delay` holds `power` still for the first 50 steps.

# %%
sim = gaussians.simulate()
model, data, error = sim.model, sim.data, sim.error
args = (model, data, error)
params = gaussians.init_params(model)
initial = model(params)
print("initial reduced chi2:", zdx_stats.chi2r(initial, data, error, zdx_stats.ddof(params, data)))

loss_grad_fn = eqx.filter_jit(eqx.filter_value_and_grad(gaussians.loss_fn))
optim, state = zdx_opt.map_optimisers(
    params,
    {
        ("mean", "std"): optax.sgd(0.002, momentum=0.5),
        "power": optax.sgd(zdx_opt.delay(0.005, 50), momentum=0.5),
    },
)
gd_losses = []
for _ in tqdm(range(500), desc="gradient descent"):
    loss, grads = loss_grad_fn(params, args)
    updates, state = optim.update(grads, state)
    params = optax.apply_updates(params, updates)
    gd_losses.append(float(loss))
gd_chi2r = float(zdx_stats.chi2r(model(params), data, error, zdx_stats.ddof(params, data)))
print("reduced chi2 after 500 steps:", gd_chi2r)

# %% [markdown]
# ## 2. BFGS with optimistix
#
# A second-order method needs no learning rates: it converges in a few tens of steps.

# %%
solver = optx.BestSoFarMinimiser(optx.BFGS(rtol=1e-12, atol=1e-12))
sol = optx.minimise(gaussians.loss_fn, solver, gaussians.init_params(model), args)
bfgs_chi2r = float(zdx_stats.chi2r(model(sol.value), data, error, zdx_stats.ddof(params, data)))
bfgs_steps = int(sol.stats["num_steps"])
print("BFGS reduced chi2:", bfgs_chi2r, "in", bfgs_steps, "steps")
show(
    plots.plot_gaussians(
        model.xs,
        data,
        float(error),
        {"truth": sim.true_values, "start": initial, "BFGS": model(sol.value)},
    ),
    "gaussians",
)

# %% [markdown]
# ## 3. Uncertainties from a batched Hessian
#
# The inverse Hessian of minus the log-likelihood (summed over the data, not averaged) at
# the best fit is the covariance of the parameters. `zdx_batching.hessian` builds it in
# blocks of columns (`nbatches`) to bound memory, and returns a function that puts a flat
# vector back into the shape of the parameters.

# %%
H, unflatten = zdx_batching.hessian(
    lambda p: gaussians.neg_loglike_fn(p, args), sol.value, nbatches=2
)
gauss_sigma = unflatten(jnp.sqrt(jnp.diag(jnp.linalg.inv(H))))
for key in sol.value:
    for value, sigma in zip(sol.value[key], gauss_sigma[key]):
        print(f"{key}: {float(value):.4f} +- {float(sigma):.4f}")

# %% [markdown]
# ## 4. A hierarchical optical model
#
# A 1.2 m telescope images one star in each of three filters. The wavefront error (seven
# Zernike coefficients, nm) is shared by all images; each filter has its own star position
# (arcsec) and flux (log10 photons). `ex.simulate` draws the truth and averages
# `N_IMAGES` noisy exposures per filter, keeping their mean as data and its standard
# error as the error; `ex.start_params` estimates a start from the data (brightest pixel,
# total flux, no wavefront error).

# %%
optics = ex.build_optics(npix=NPIX)
optics_sim = ex.simulate(optics, n_images=N_IMAGES)
observations = optics_sim.observations
optics_args = (optics, observations)
start = ex.start_params(observations, optics)
print("start reduced chi2:", float(ex.get_reduced_chi2(start, optics, observations)))
show(plots.plot_data(observations, optics), "optics_data")

# %% [markdown]
# Plain gradient descent with the tutorial's learning rates, which span eight orders of
# magnitude, barely moves: each parameter needs its own scale.

# %%
optics_grad_fn = eqx.filter_jit(eqx.filter_value_and_grad(ex.loss_fn))
optim, state = zdx_opt.map_optimisers(
    start,
    {
        "position": optax.sgd(1e-10, momentum=0.5),
        "wfe": optax.sgd(zdx_opt.delay(1e-4, 25), momentum=0.5),
        "flux": optax.sgd(zdx_opt.delay(1e-9, 50), momentum=0.5),
    },
)
params = start
for _ in tqdm(range(GD_STEPS), desc="gradient descent"):
    loss, grads = optics_grad_fn(params, optics_args)
    updates, state = optim.update(grads, state)
    params = optax.apply_updates(params, updates)
print(
    "reduced chi2 after gradient descent:", float(ex.get_reduced_chi2(params, optics, observations))
)

# %% [markdown]
# ## 5. Natural-gradient descent
#
# The Fisher matrix `F` of the loss sets the scale of every parameter at once:
# preconditioned by `F^-1`, a step of rate 1 is a Newton step, whatever the units.
# `ex.loss_fisher` computes it with `zdx_batching.fisher` (first derivatives only,
# `J^T J` of the z-scores) and `zdx_opt.natural_gradient` is an optax transformation that
# applies `F^-1` to the gradients, ready for `optax.chain`.
#
# Given a function rather than a matrix, `natural_gradient` re-evaluates the Fisher
# matrix every `refresh_every` steps. Here that matters: at a start without wavefront
# error the even aberrations (defocus, astigmatism) are barely constrained, so the
# start's matrix is a poor metric once they grow.

# %%
F = ex.loss_fisher(start, optics, observations)
optim = optax.chain(
    zdx_opt.natural_gradient(lambda p: ex.loss_fisher(p, optics, observations), refresh_every=5),
    optax.sgd(0.1, momentum=0.5),
)
state = optim.init(start)


@eqx.filter_jit
def ngd_step(params, state, args):
    loss, grads = eqx.filter_value_and_grad(ex.loss_fn)(params, args)
    updates, state = optim.update(grads, state, params)
    return optax.apply_updates(params, updates), state, loss


params, ngd_losses = start, []
for _ in (bar := tqdm(range(NGD_STEPS), desc="natural gradient")):
    params, state, loss = ngd_step(params, state, optics_args)
    ngd_losses.append(float(loss))
    bar.set_postfix(log10_loss=f"{np.log10(float(loss)):.3f}")
ngd_params = params
ngd_chi2r = float(ex.get_reduced_chi2(ngd_params, optics, observations))
print("reduced chi2 after natural gradient:", ngd_chi2r)
show(plots.plot_losses(ngd_losses), "ngd_loss")

# %% [markdown]
# ## 6. Reparametrisation: L-BFGS in whitened coordinates, in one call
#
# `zdx_opt.minimise(loss_fn, params, args, fmat=F)` writes the parameters as
# `params = x0 + P u` with `P` whitening `F` (`P^T F P = I`, `zdx_opt.eigen_projection`)
# and runs optimistix's L-BFGS on `u`, where the problem is round and unit-scaled.

# %%
solution = zdx_opt.minimise(ex.loss_fn, start, optics_args, fmat=F, max_steps=256)
lbfgs_params = solution.params
lbfgs_chi2r = float(ex.get_reduced_chi2(lbfgs_params, optics, observations))
print("whitened L-BFGS reduced chi2:", lbfgs_chi2r, "in", int(solution.num_steps), "steps")

# %% [markdown]
# From a start without wavefront error either method can settle in a mirror-image local
# minimum, where the even aberrations have the wrong sign (the pupil's three spiders are
# what tells the two apart). Keep the better of the two fits:

# %%
ngd_loss = float(ex.loss_fn(ngd_params, optics_args))
lbfgs_loss = float(ex.loss_fn(lbfgs_params, optics_args))
mle_params = ngd_params if ngd_loss < lbfgs_loss else lbfgs_params
final_chi2r = float(ex.get_reduced_chi2(mle_params, optics, observations))
print("best fit reduced chi2:", final_chi2r)
show(
    plots.plot_z_scores(
        {"start": start, "natural gradient": ngd_params, "whitened L-BFGS": lbfgs_params},
        optics,
        observations,
    ),
    "residuals",
)

# %% [markdown]
# ## 7. Error bars and posterior sampling
#
# The Hessian of minus the log-likelihood at the best fit gives the covariance and the
# error bars (`progress=True` shows a bar over the column blocks). Comparing with the
# truth: every `|fit - truth| / sigma` should be a few at most.

# %%
H_mle, _ = zdx_batching.hessian(
    lambda p: -ex.loglike_fn(p, optics_args), mle_params, nbatches=4, progress=True
)
covariance = jnp.linalg.inv(H_mle)
sigma = jnp.sqrt(jnp.diag(covariance))
flat_fit, _ = ravel_pytree(mle_params)
flat_truth, _ = ravel_pytree(optics_sim.true_params)
pulls = (flat_fit - flat_truth) / sigma
names = zdx_base.scalar_names(mle_params)
for name, value, s, pull in zip(names, flat_fit, sigma, pulls):
    print(f"{name:<18} {float(value):>12.6g} +- {float(s):.2g}   pull {float(pull):+.2f}")
max_abs_pull = float(jnp.max(jnp.abs(pulls)))
show(plots.plot_matrices(F, covariance, names), "matrices")

# %% [markdown]
# NUTS samples best where the posterior is a unit normal: in the latent space whitened by
# `H_mle`. `ex.sample_posterior` runs `zdx_sample.nuts` there (numpyro's NUTS directly
# when zdx-sample is not installed) and returns the draws in physical units.

# %%
samples = ex.sample_posterior(
    lambda p: ex.loglike_fn(p, optics_args),
    mle_params,
    H_mle,
    num_warmup=NUTS_WARMUP,
    num_samples=NUTS_SAMPLES,
)
print(f"NUTS ({samples.backend}): largest R-hat {float(jnp.max(samples.r_hat)):.3f}")
show(
    plots.corner_plot(
        flat_fit,
        covariance,
        names,
        samples=samples.flat,
        truth=flat_truth,
        select=plots.key_parameters(covariance, 6),
    ),
    "corner",
)

# %% [markdown]
# ## Everything at once
#
# `ex.fit(simulation)` runs sections 4 to 7 as above and `zdx_examples.report.write_report`
# writes the figures, a `summary.json` and a `report.md`; the command
# `zdx-examples optics-fit --out report/` (or `hatch run examples:optics-fit --out
# report/`) does both.
