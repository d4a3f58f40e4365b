"""The hierarchical optics example of the tutorial, built on dLux: the public face of it all.

A telescope (:func:`build_optics`, defined in ``zdx_examples._telescope``) images one star
through each of several filters; the wavefront error is shared by all images, the position
and flux of the star are per filter. Everything of the example is imported from here: the
telescope, the observations and their simulation, the loss, and the end-to-end ``fit`` with
each of its stages.

>>> from zdx_examples import optics as ex
>>> sim = ex.simulate(ex.build_optics(npix=64), n_images=100)      # doctest: +SKIP
>>> params = ex.start_params(sim.observations, sim.optics)          # doctest: +SKIP
>>> ex.loss_fn(params, (sim.optics, sim.observations))             # doctest: +SKIP
>>> result = ex.fit(sim)     # natural gradient, L-BFGS, Hessian, NUTS  # doctest: +SKIP
>>> result.chi2r(), result.max_abs_pull                                # doctest: +SKIP
"""

from ._curvature import loss_curvature as loss_curvature
from ._curvature import loss_fisher as loss_fisher
from ._error_bars import hessian_covariance as hessian_covariance
from ._filters import check_filters as check_filters
from ._filters import default_filters as default_filters
from ._filters import filter_set as filter_set
from ._fit import get_reduced_chi2 as get_reduced_chi2
from ._fit import loglike_fn as loglike_fn
from ._fit import loss_fn as loss_fn
from ._fit import z_scores as z_scores
from ._lbfgs import whitened_lbfgs as whitened_lbfgs
from ._natural_gradient import natural_gradient_descent as natural_gradient_descent
from ._observation import Observation as Observation
from ._observation import take_image as take_image
from ._pipeline import fit as fit
from ._result import OpticsFit as OpticsFit
from ._sampling import PosteriorSamples as PosteriorSamples
from ._sampling import sample_posterior as sample_posterior
from ._simulate import OpticsSimulation as OpticsSimulation
from ._simulate import simulate as simulate
from ._simulate import start_params as start_params
from ._simulate import true_parameters as true_parameters
from ._telescope import FilteredOpticalSystem as FilteredOpticalSystem
from ._telescope import NormalisingAperture as NormalisingAperture
from ._telescope import allow_rank_promotion as allow_rank_promotion
from ._telescope import build_optics as build_optics
from ._telescope import noll_to_nm as noll_to_nm
from ._telescope import telescope_aperture as telescope_aperture
from ._telescope import zernike_basis as zernike_basis
