"""Zodiax: scientific model fitting in JAX, as one install of the zdx-* packages."""

from zdx_base import Base as Base
from zdx_base import EquinoxWrapper as EquinoxWrapper
from zdx_base import WrapperHolder as WrapperHolder
from zdx_base import build_wrapper as build_wrapper
