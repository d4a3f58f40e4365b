"""Where the optics fit starts: resolving the sign of the even Zernike terms.

Why a search is needed. The image of a point source is ``|FT(A exp(i phi))|^2``, with
``A`` the pupil's transmission and ``phi`` the wavefront phase. Write ``phi = phi_e +
phi_o``, its parts of even and odd symmetry under ``r -> -r``: a Zernike term of even
radial order (defocus, astigmatism, spherical...) is even, one of odd order (coma,
trefoil...) is odd. For a pupil that looks the same turned by half a turn,
``A(-r) = A(r)``, the phase ``-phi_e + phi_o`` gives exactly the same image as
``phi_e + phi_o`` (the Fourier transform of the complex conjugate field, read at ``-k``):
the data cannot tell the sign of the even terms. Our pupil's three spiders break that
symmetry only slightly, so the loss has two deep minima, the true one and its mirror
image with every even term of the wrong sign (and, between them, saddles where some even
terms are near zero). From a start with no wavefront error, the gradient with respect to
the even terms vanishes (the image changes only to second order in them), and which
minimum a descent reaches is decided by the noise: both the natural gradient and L-BFGS
land in the mirror image on some data sets (reduced chi-squared 1e3 to 1e5).

What is done. A short pilot descent from the data-based start gives magnitudes for every
term; then each pattern of signs of the even terms is applied to the pilot's even
coefficients (the pattern of all minus signs is the mirror image), a few natural-gradient
steps are taken from each candidate (all candidates in one compiled program,
:func:`zdx_opt.fit_many`), and the candidate with the lowest loss becomes the start of
every method. The mirror images differ in loss by far more than the noise (the spiders
make them distinguishable), so the loss after a few steps picks the true basin.
"""

from __future__ import annotations

import itertools
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as onp

import zdx_opt
from zdx_base import checks

from ._curvature import loss_curvature_fn
from ._fit import loss_fn
from ._telescope import noll_to_nm


def even_zernike_terms(n_zernike: int, first_noll: int = 4) -> tuple[int, ...]:
    """Positions, in the ``wfe`` vector, of the Zernike terms of even radial order.

    Parameters
    ----------
    n_zernike : int
        Number of terms, Noll indices ``first_noll, first_noll + 1, ...``.
    first_noll : int
        Noll index of the first term (4, defocus, in :func:`build_optics`).

    Returns
    -------
    positions : tuple[int, ...]

    >>> even_zernike_terms(7)  # defocus and the two astigmatisms; comae and trefoils are odd
    (0, 1, 2)
    """
    return tuple(i for i in range(n_zernike) if noll_to_nm(first_noll + i)[0] % 2 == 0)


def sign_patterns(count: int) -> onp.ndarray:
    """Every pattern of ``count`` signs, all plus first and all minus last.

    >>> sign_patterns(2).tolist()
    [[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]]
    """
    return onp.array(list(itertools.product([1.0, -1.0], repeat=count))).reshape(-1, count)


class StartChoice(eqx.Module):
    """The outcome of :func:`choose_start`.

    Attributes
    ----------
    params : dict
        The chosen start (the best candidate after its trial steps).
    data_start : dict
        The start estimated from the data (no wavefront error).
    pilot : dict
        The pilot descent's end point, whose even terms the patterns flip.
    even_terms : tuple[int, ...]
        Positions in ``wfe`` of the even Zernike terms that were searched.
    patterns : Array
        ``(P, len(even_terms))`` the signs applied to the pilot's even terms.
    losses : Array
        ``(P,)`` the loss of each candidate after its trial steps.
    chosen : int
        Index of the chosen pattern (lowest loss).
    """

    params: dict
    data_start: dict
    pilot: dict
    even_terms: tuple[int, ...] = eqx.field(static=True)
    patterns: jax.Array
    losses: jax.Array
    chosen: int = eqx.field(static=True)

    def describe(self) -> str:
        """One sentence on which start was chosen and why."""
        signs = "".join("+" if s > 0 else "-" for s in onp.asarray(self.patterns[self.chosen]))
        order = onp.argsort(onp.asarray(self.losses))
        runner = int(order[1]) if len(order) > 1 else self.chosen
        ratio = float(self.losses[runner] / self.losses[self.chosen])
        return (
            f"sign pattern {signs} of the even Zernike terms {list(self.even_terms)} (relative "
            f"to the pilot fit): lowest loss {float(self.losses[self.chosen]):.6g} of "
            f"{len(order)} candidates after the trial steps, {ratio:.3g}x below the next best"
        )


def flip_even_terms(params: dict, even_terms: tuple[int, ...], patterns: Any) -> dict:
    """``params`` repeated once per pattern, the even terms of ``wfe`` multiplied by it.

    Returns
    -------
    candidates : dict
        ``params``' layout with a leading axis of length ``len(patterns)``.
    """
    patterns = jnp.asarray(patterns, float)
    index = jnp.asarray(even_terms, int)

    def one(signs):
        return {**params, "wfe": params["wfe"].at[index].multiply(signs)}

    return jax.vmap(one)(patterns)


class SignSearch(NamedTuple):
    """The outcome of :func:`search_signs` for a batch of ``N`` starts.

    Attributes
    ----------
    params : dict
        The chosen start of every data set (leading axis ``N``).
    losses : Array
        ``(N, P)`` each candidate's loss after its trial steps (``inf`` where not finite).
    patterns : Array
        ``(P, len(even_terms))`` the signs applied to the pilot's even terms.
    pilot : dict
        The pilot descent's end point of every data set (leading axis ``N``).
    even_terms : tuple[int, ...]
        Positions in ``wfe`` of the even Zernike terms.
    """

    params: dict
    losses: jax.Array
    patterns: jax.Array
    pilot: dict
    even_terms: tuple[int, ...]


def _repeat_data_sets(observations: list, times: int) -> list:
    """``observations`` with each data set (leading axis) repeated ``times`` times in a row."""
    return [
        obs.set(
            ["data", "error"],
            [jnp.repeat(obs.data, times, axis=0), jnp.repeat(obs.error, times, axis=0)],
        )
        for obs in observations
    ]


def search_signs(
    fn: str,
    starts: dict,
    args: tuple,
    *,
    batched_data: bool = False,
    max_terms: int | None = None,
    pilot_steps: int = 30,
    trial_steps: int = 20,
    learning_rate: float = 0.1,
    refresh_every: int = 5,
    block_size: int | None = None,
    progress: bool = False,
) -> SignSearch:
    """The sign search of :func:`choose_start` from ``N`` starts, in compiled blocks.

    1. a pilot natural-gradient descent of ``pilot_steps`` from every start;
    2. one candidate per sign pattern of the even terms (:func:`sign_patterns`) applied to
       each pilot's even coefficients;
    3. ``trial_steps`` natural-gradient steps from every candidate (:func:`zdx_opt.fit_many`);
       per start, the candidate with the lowest loss wins.

    Parameters
    ----------
    fn : str
        The function the search runs for, named in error messages.
    starts : dict
        The data-based starts (:func:`start_params`), a leading axis of length ``N``.
    args : tuple
        ``(optics, observations)``.
    batched_data : bool
        Whether the observations hold one data set per start (``data`` and ``error`` with
        a leading axis ``N``); otherwise every start fits the same data.
    max_terms : int | None
        Search the signs of at most this many even terms (the lowest orders), ``2 **
        max_terms`` candidates; further even terms take the sign of the first one, so the
        full mirror image is always a candidate. None searches them all.
    pilot_steps, trial_steps : int
        Lengths of the pilot descent and of each candidate's trial, >= 1.
    learning_rate, refresh_every
        Of the natural-gradient steps (see :func:`natural_gradient_descent`).
    block_size : int | None
        Starts per compiled block (:func:`zdx_opt.fit_many`); None runs them all at once.
    progress : bool
        Progress bars over the blocks.

    Returns
    -------
    SignSearch

    Raises
    ------
    TypeError, ValueError
        If a step count or ``max_terms`` is not an integer >= 1.
    """
    pilot_steps = checks.check_int(fn, "pilot_steps", pilot_steps, minimum=1)
    trial_steps = checks.check_int(fn, "trial_steps", trial_steps, minimum=1)
    max_terms = checks.check_int(fn, "max_terms", max_terms, minimum=1, allow_none=True)
    even = even_zernike_terms(int(starts["wfe"].shape[1]))
    searched = sign_patterns(len(even) if max_terms is None else min(len(even), max_terms))
    rest = onp.repeat(searched[:, :1], len(even) - searched.shape[1], axis=1)
    patterns = jnp.asarray(onp.concatenate([searched, rest], axis=1))
    count = patterns.shape[0]
    settings = dict(
        args_axes=(None, 0) if batched_data else None,
        fisher_fn=loss_curvature_fn,
        learning_rate=learning_rate,
        refresh_every=refresh_every,
        progress=progress,
    )
    pilot = zdx_opt.fit_many(
        loss_fn, starts, args, steps=pilot_steps, block_size=block_size, **settings
    )
    candidates = jax.vmap(lambda p: flip_even_terms(p, even, patterns))(pilot.params)
    candidates = jax.tree.map(lambda leaf: leaf.reshape(-1, *leaf.shape[2:]), candidates)
    optics, observations = args
    trials = zdx_opt.fit_many(
        loss_fn,
        candidates,
        (optics, _repeat_data_sets(observations, count)) if batched_data else args,
        steps=trial_steps,
        block_size=None if block_size is None else block_size * count,
        **settings,
    )
    losses = jnp.where(jnp.isfinite(trials.loss), trials.loss, jnp.inf).reshape(-1, count)
    rows = jnp.arange(losses.shape[0]) * count + jnp.argmin(losses, axis=1)
    return SignSearch(
        params=jax.tree.map(lambda leaf: leaf[rows], trials.params),
        losses=losses,
        patterns=patterns,
        pilot=pilot.params,
        even_terms=even,
    )


def choose_start(start: dict, args: tuple, *, max_terms: int = 4, **search: Any) -> StartChoice:
    """Resolve the sign of the even Zernike terms before fitting (see the module's notes).

    :func:`search_signs` from the one start ``start``: a pilot natural-gradient descent,
    one candidate per sign pattern of the pilot's even terms, a few natural-gradient steps
    from every candidate (all in one compiled program); the candidate with the lowest loss
    wins.

    Parameters
    ----------
    start : dict
        The data-based start (:func:`start_params`).
    args : tuple
        ``(optics, observations)``.
    max_terms : int
        As in :func:`search_signs`: at most ``2 ** max_terms`` candidates.
    **search
        ``pilot_steps``, ``trial_steps``, ``learning_rate``, ``refresh_every``, as in
        :func:`search_signs`.

    Returns
    -------
    StartChoice
        The chosen start, every candidate's loss and :meth:`StartChoice.describe`.

    Raises
    ------
    TypeError, ValueError
        If a step count is not an integer >= 1.
    """
    one = jax.tree.map(lambda leaf: jnp.asarray(leaf)[None], start)
    found = search_signs("choose_start", one, args, max_terms=max_terms, **search)
    losses = found.losses[0]
    return StartChoice(
        params=jax.tree.map(lambda leaf: leaf[0], found.params),
        data_start=start,
        pilot=jax.tree.map(lambda leaf: leaf[0], found.pilot),
        even_terms=found.even_terms,
        patterns=found.patterns,
        losses=losses,
        chosen=int(jnp.argmin(losses)),
    )
