"""Posteriors with known answers, for checking a sampler or an evidence estimator.

Each builder returns a :class:`KnownTarget`: a log-likelihood and prior in the form every
estimator of ``zdx_sample`` takes, with the posterior moments and evidence they should
find.
"""

from ._targets import KnownTarget as KnownTarget
from ._targets import correlated_gaussian as correlated_gaussian
from ._targets import logistic_product as logistic_product
from ._targets import rotated_gaussian as rotated_gaussian
