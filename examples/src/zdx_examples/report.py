"""The written result of the optics fit: PNG figures, ``summary.json`` and ``report.md``.

>>> from zdx_examples import optics as ex, report                        # doctest: +SKIP
>>> result = ex.fit(ex.simulate(ex.build_optics(npix=64), n_images=300))  # doctest: +SKIP
>>> paths = report.write_report(result, "report")                      # doctest: +SKIP
"""

from ._report import FIGURES as FIGURES
from ._report import make_figures as make_figures
from ._report import markdown as markdown
from ._report import summarise as summarise
from ._report import write_report as write_report
from ._saving import load_fit as load_fit
from ._saving import save_fit as save_fit
