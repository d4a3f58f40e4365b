"""``python -m zdx_examples``: the ``zdx-examples`` command."""

import sys

from ._cli import main

sys.exit(main())
