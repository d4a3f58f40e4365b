"""zdx-stats: statistics for fitting models to data with JAX.

Gaussian errors: ``z_score``, ``loglike``, ``chi2``, ``chi2r``, ``chi2r_from_z`` and the
degrees of freedom ``ddof``; correlated errors: ``mv_z_score``, ``mv_loglike`` and the
Gauss-Newton Hessian ``gauss_hessian``; photon counts: ``poisson_loglike``; model comparison:
``aic`` and ``bic``; covariance matrices: ``calc_entropy``, ``gaussian_entropy``,
``check_symmetric`` and ``check_positive_semi_definite``.

Data with NaN pixels: every function above lets NaN propagate (its docstring says how);
``finite_mask``, ``z_score_finite``, ``loglike_finite``, ``chi2_finite``, ``chi2r_finite``
and ``chi2r_from_z_finite`` use only the finite pixels, with gradients free of NaN, and
``ddof(..., finite_only=True)`` counts only finite data.

Calibration of error bars and samplers: ``pulls``, ``coverage`` (with ``nominal_coverage``
and binomial errors), ``pull_statistics``, ``normality_test`` (D'Agostino-Pearson),
``sbc_ranks``, ``rank_histogram`` and ``rank_uniformity_test`` (Talts et al. 2018), and
the figures ``plot_pull_histograms``, ``plot_coverage``, ``plot_rank_histograms`` (with
the optional ``plot`` extra, matplotlib).

The names of zodiax 0.5's ``zodiax.stats`` keep their meaning and numbers.
"""

import importlib.metadata

from ._calibration import Coverage as Coverage
from ._calibration import NormalityTest as NormalityTest
from ._calibration import PullStatistics as PullStatistics
from ._calibration import coverage as coverage
from ._calibration import nominal_coverage as nominal_coverage
from ._calibration import normality_test as normality_test
from ._calibration import pull_statistics as pull_statistics
from ._calibration import pulls as pulls
from ._calibration_plots import plot_coverage as plot_coverage
from ._calibration_plots import plot_pull_histograms as plot_pull_histograms
from ._calibration_plots import plot_rank_histograms as plot_rank_histograms
from ._dof import ddof as ddof
from ._entropy import calc_entropy as calc_entropy
from ._entropy import gaussian_entropy as gaussian_entropy
from ._finite import chi2_finite as chi2_finite
from ._finite import chi2r_finite as chi2r_finite
from ._finite import chi2r_from_z_finite as chi2r_from_z_finite
from ._finite import finite_mask as finite_mask
from ._finite import loglike_finite as loglike_finite
from ._finite import z_score_finite as z_score_finite
from ._gaussian import chi2 as chi2
from ._gaussian import chi2r as chi2r
from ._gaussian import chi2r_from_z as chi2r_from_z
from ._gaussian import loglike as loglike
from ._gaussian import z_score as z_score
from ._information import aic as aic
from ._information import bic as bic
from ._matrix import check_positive_semi_definite as check_positive_semi_definite
from ._matrix import check_symmetric as check_symmetric
from ._multivariate import gauss_hessian as gauss_hessian
from ._multivariate import mv_loglike as mv_loglike
from ._multivariate import mv_z_score as mv_z_score
from ._poisson import poisson_loglike as poisson_loglike
from ._sbc import UniformityTest as UniformityTest
from ._sbc import rank_histogram as rank_histogram
from ._sbc import rank_uniformity_test as rank_uniformity_test
from ._sbc import sbc_ranks as sbc_ranks

__version__ = importlib.metadata.version("zdx-stats")
