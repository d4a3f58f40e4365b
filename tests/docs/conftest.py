"""The documentation tests run in the `docs` environment (`hatch run docs:test`), which has
MkDocs, jupytext and the Chromium driver and sets ZDX_DOCS_TESTS=1; CI runs them after
`hatch run docs:build`. The main suite (`hatch test`) does not collect this folder."""

import os

collect_ignore_glob = [] if os.environ.get("ZDX_DOCS_TESTS") == "1" else ["test_*.py"]
