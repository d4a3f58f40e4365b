"""``zodiax.sample`` is zdx_sample itself, imported the first time it is asked for.

``import zodiax`` does not import this module, so that the sampling stack (numpyro,
blackjax, ArviZ, pandas, xarray) loads only for users who sample.
"""

import sys

import zdx_sample

sys.modules[__name__] = zdx_sample
