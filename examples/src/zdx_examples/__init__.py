"""zdx-examples: the worked examples of the zodiax tutorial.

``zdx_examples.optics`` is the hierarchical optics fit (a dLux telescope imaging one star
through several filters); ``zdx_examples.gaussians`` is the sum-of-Gaussians fit.
"""

import importlib.metadata

from . import gaussians as gaussians
from . import optics as optics

__version__ = importlib.metadata.version("zdx-examples")
