"""The sum-of-Gaussians example of the tutorial.

>>> from zdx_examples import gaussians
>>> sim = gaussians.simulate()
>>> params = gaussians.init_params(sim.model)
>>> loss = gaussians.loss_fn(params, (sim.model, sim.data, sim.error))
"""

from ._gaussians import GaussianModel as GaussianModel
from ._gaussians import GaussianSimulation as GaussianSimulation
from ._gaussians import default_model as default_model
from ._gaussians import init_params as init_params
from ._gaussians import loss_fn as loss_fn
from ._gaussians import neg_loglike_fn as neg_loglike_fn
from ._gaussians import simulate as simulate
