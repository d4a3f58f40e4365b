"""``import zodiax`` loads no sampling stack; ``zodiax.sample`` loads it when first used."""

import json
import subprocess
import sys

HEAVY = ["numpyro", "blackjax", "arviz", "pandas", "xarray"]


def _modules_after(code: str) -> dict:
    """Which HEAVY packages are in ``sys.modules`` after running ``code`` in a fresh Python."""
    probe = (
        f"import sys, json\n{code}\n"
        f"print(json.dumps({{name: name in sys.modules for name in {HEAVY!r}}}))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_zodiax_loads_no_sampling_stack():
    loaded = _modules_after("import zodiax\nzodiax.Base, zodiax.hessian, zodiax.stats.chi2")
    assert not any(loaded.values()), loaded


def test_zodiax_sample_loads_it_on_first_use():
    loaded = _modules_after(
        "import zodiax, zdx_sample\n"
        "assert zodiax.sample is zdx_sample and zodiax.sample.nuts is zdx_sample.nuts\n"
        "from zodiax.sample import laplace\n"
        "import zodiax.sample as s\n"
        "assert s is zdx_sample and laplace is zdx_sample.laplace"
    )
    assert loaded["numpyro"] and loaded["blackjax"], loaded


def test_sample_is_listed_and_unknown_names_raise():
    import pytest

    import zodiax

    assert "sample" in dir(zodiax)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = zodiax.nope
