"""zdx-base: read and change the parameters of any pytree by path.

``Base`` is an ``equinox.Module`` with the path methods (``get``, ``set``, ``add``,
``multiply``, ``divide``, ``power``, ``min``, ``max``); the same operations are functions on
any pytree (``zdx_base.set(tree, "a.b", value)``). ``ravel`` flattens a pytree into a vector
with a name for every scalar. ``save`` and ``load`` write a model to a file (equinox's
leaf format, with the parameter names and package versions beside the leaves) and read it
back into a skeleton of the same structure. ``Checkpoint`` keeps the progress of a long run
(atomic, checksummed, refused when damaged or written for another model or other
settings) and stops it cleanly on SIGINT or SIGTERM; ``fingerprint`` is the digest of a
model it compares. ``zdx_base.checks`` holds the argument checks
that every package of the family shares.
"""

import importlib.metadata

from . import checks as checks
from ._base import Base as Base
from ._checkpoint import CHECKPOINT_FORMAT as CHECKPOINT_FORMAT
from ._checkpoint import Checkpoint as Checkpoint
from ._checkpoint import CheckpointError as CheckpointError
from ._checkpoint import CheckpointInterrupted as CheckpointInterrupted
from ._fingerprint import fingerprint as fingerprint
from ._operations import add as add
from ._operations import divide as divide
from ._operations import get as get
from ._operations import max as max
from ._operations import min as min
from ._operations import multiply as multiply
from ._operations import power as power
from ._operations import set as set
from ._paths import Path as Path
from ._paths import resolve as resolve
from ._ravel import Raveled as Raveled
from ._ravel import ravel as ravel
from ._ravel import scalar_names as scalar_names
from ._save_format import LeafInfo as LeafInfo
from ._save_format import SavedInfo as SavedInfo
from ._serialise import load as load
from ._serialise import save as save
from ._serialise import saved_info as saved_info
from ._signals import DeferredSignals as DeferredSignals
from ._wrapper import EquinoxWrapper as EquinoxWrapper
from ._wrapper import WrapperHolder as WrapperHolder
from ._wrapper import build_wrapper as build_wrapper

__version__ = importlib.metadata.version("zdx-base")
