"""Figures of the hierarchical optics fit, as matplotlib ``Figure`` objects.

Nothing here touches pyplot's global state: save a figure with ``fig.savefig(path)``
(under any backend, Agg included) or show it in a notebook.

>>> import numpy as np
>>> from zdx_examples import plots
>>> fig = plots.corner_plot(np.zeros(2), np.eye(2), ["a", "b"], truth=np.ones(2))
>>> len(fig.axes)
4
"""

from ._plot_covariance import corner_plot as corner_plot
from ._plot_covariance import key_parameters as key_parameters
from ._plot_covariance import plot_matrices as plot_matrices
from ._plot_images import plot_data as plot_data
from ._plot_images import plot_z_scores as plot_z_scores
from ._plots import group_of as group_of
from ._plots import plot_gaussians as plot_gaussians
from ._plots import plot_losses as plot_losses
from ._plots import plot_parameter_history as plot_parameter_history
from ._plots import plot_pulls as plot_pulls
