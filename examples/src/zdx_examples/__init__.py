"""zdx-examples: the worked examples of the zodiax tutorial.

``zdx_examples.optics`` is the hierarchical optics fit (a dLux telescope imaging one star
through several filters) with its end-to-end ``fit``; ``zdx_examples.gaussians`` is the
sum-of-Gaussians fit; ``zdx_examples.plots`` and ``zdx_examples.report`` draw the figures
and write the report of an optics fit. The command ``zdx-examples`` (or ``python -m
zdx_examples``) runs both fits.
"""

import importlib.metadata

from . import gaussians as gaussians
from . import optics as optics
from . import plots as plots
from . import report as report

__version__ = importlib.metadata.version("zdx-examples")
