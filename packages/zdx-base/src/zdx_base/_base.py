"""``Base``: an equinox Module with the path API as methods."""

from __future__ import annotations

from typing import Any

import equinox as eqx

from . import _operations as ops
from ._operations import MISSING


class Base(eqx.Module):
    """An ``equinox.Module`` whose parameters can be read and changed by path.

    Subclass it as you would ``equinox.Module``. Every method returns a new module (modules
    are immutable) and accepts the input styles of :func:`zdx_base.set`:

    >>> import jax.numpy as jnp
    >>> import zdx_base
    >>> class Line(zdx_base.Base):
    ...     slope: jnp.ndarray
    ...     offset: dict
    >>> line = Line(jnp.array(1.0), {"y": jnp.array(0.0)})
    >>> line = line.set({"slope": 2.0, "offset.y": 1.0}).multiply("slope", 3.0)
    >>> float(line.get("slope")), float(line.get("offset.y"))
    (6.0, 1.0)

    A path step resolves through attributes first, including a subclass's own
    ``__getattr__`` delegation, then dict keys, then list indices (``"layers.0"``).
    """

    def get(self, parameters: Any, as_dict: bool = False, to_array: bool = True) -> Any:
        """The value(s) named by ``parameters``; see :func:`zdx_base.get`."""
        return ops.get(self, parameters, as_dict=as_dict, to_array=to_array)

    def set(self, parameters: Any = MISSING, values: Any = MISSING, /, **updates: Any) -> Any:
        """A copy with the named leaves replaced by ``values``; see :func:`zdx_base.set`."""
        return ops.set(self, parameters, values, **updates)

    def add(self, parameters: Any = MISSING, values: Any = MISSING, /, **updates: Any) -> Any:
        """A copy with ``values`` added to the named leaves; see :func:`zdx_base.add`."""
        return ops.add(self, parameters, values, **updates)

    def multiply(self, parameters: Any = MISSING, values: Any = MISSING, /, **updates: Any) -> Any:
        """A copy with the named leaves multiplied by ``values``."""
        return ops.multiply(self, parameters, values, **updates)

    def divide(self, parameters: Any = MISSING, values: Any = MISSING, /, **updates: Any) -> Any:
        """A copy with the named leaves divided by ``values``."""
        return ops.divide(self, parameters, values, **updates)

    def power(self, parameters: Any = MISSING, values: Any = MISSING, /, **updates: Any) -> Any:
        """A copy with the named leaves raised to the power ``values``."""
        return ops.power(self, parameters, values, **updates)

    def min(self, parameters: Any = MISSING, values: Any = MISSING, /, **updates: Any) -> Any:
        """A copy with the named leaves replaced by their minimum with ``values``."""
        return ops.min(self, parameters, values, **updates)

    def max(self, parameters: Any = MISSING, values: Any = MISSING, /, **updates: Any) -> Any:
        """A copy with the named leaves replaced by their maximum with ``values``."""
        return ops.max(self, parameters, values, **updates)
