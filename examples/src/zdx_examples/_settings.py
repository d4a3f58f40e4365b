"""Settings of a command given by name, over a table of defaults; the tables of every
command (here, in a module that imports nothing heavy, so that the command line reads them
before JAX starts: ``jax.distributed.initialize`` must come first)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def with_defaults(fn: str, defaults: Mapping[str, Any], given: Mapping[str, Any]) -> dict:
    """``defaults`` with the entries of ``given`` in their place.

    Parameters
    ----------
    fn : str
        The function taking the settings, named in the error message.
    defaults : Mapping[str, Any]
        Every known setting and its value when not given.
    given : Mapping[str, Any]
        The settings given, each one of ``defaults``' names.

    Returns
    -------
    settings : dict
        Every setting of ``defaults``, in its order, with the given values.

    Raises
    ------
    TypeError
        If ``given`` names a setting that ``defaults`` does not have.

    >>> with_defaults("demo", {"n": 1, "seed": 0}, {"seed": 3})
    {'n': 1, 'seed': 3}
    """
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise TypeError(f"{fn}: unknown settings {unknown}; known: {sorted(defaults)}.")
    return {**defaults, **given}


DEFAULTS = {
    "npix": 128,
    "psf_npix": 32,
    "n_zernike": 7,
    "filters": 3,
    "n_images": 1000,
    "seed": 0,
    "ngd_steps": 100,
    "learning_rate": 0.1,
    "refresh_every": 5,
    "max_steps": 256,
    "nuts_warmup": 200,
    "nuts_samples": 300,
    "nuts_chains": 1,
    "corner_params": 6,
}
"""The settings of ``optics-fit`` when no option is given."""


OPTICS_CALIBRATION_DEFAULTS = {
    "n": 200,
    "npix": 32,
    "psf_npix": 16,
    "n_zernike": 7,
    "filters": 3,
    "n_images": 1000,
    "read_noise": 10.0,
    "noise": "averaged",
    "seed": 0,
    "ngd_steps": 50,
    "learning_rate": 0.5,
    "refresh_every": 5,
    "search_learning_rate": 0.1,
    "pilot_steps": 30,
    "trial_steps": 10,
    "block_size": 50,
}
"""The settings of ``calibrate optics`` when no option is given. The sizes are small but
resolve the aberrations: a 32-pixel pupil has 16 pixels across a radius of the primary, and
the finest Zernike term used (radial order 3, three azimuthal periods) still spans about 8
pixels per half period at the edge; the 16-pixel detector (1.2 arcsec) covers 7 lambda/D at
1.0 micron and 4.4 at 1.6 microns, where most of each aberrated image lies. The sign search
steps at the report's learning rate (0.1: from a start without wavefront error, larger steps
overshoot the barely constrained even terms); the fit from the chosen start at 0.5."""


SBC_DEFAULTS = {
    "n": 100,
    "nsamples": 100,
    "error": 0.05,
    "seed": 0,
    "draws": 99,
    "nuts_warmup": 200,
    "nuts_thin": 2,
    "num_live": 100,
    "samplers": "nuts,nested_sampling",
}
"""The settings of ``calibrate gaussians`` when no option is given."""


CALIBRATE_DETECTOR_DEFAULTS = {
    "npix": 32,
    "pupil_npix": 64,
    "ndither": 3,
    "nwavels": 3,
    "seed": 0,
    "max_steps": 30,
    "flat": 0.0,
}
"""The settings of ``calibrate-detector`` when no option is given."""
