"""The example of packages/zodiax/README.md runs and fits its line."""

import pathlib
import re

import jax.numpy as jnp

README = pathlib.Path(__file__).resolve().parents[2] / "packages" / "zodiax" / "README.md"


def test_readme_example_fits_the_line():
    (code,) = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    params, covariance = namespace["params"], namespace["covariance"]
    sigma_offset, sigma_slope = jnp.sqrt(jnp.diag(covariance))  # ravel order: sorted keys
    assert abs(float(params["slope"]) - 2.0) < 4 * float(sigma_slope)
    assert abs(float(params["offset"]) - 0.5) < 4 * float(sigma_offset)
    assert 0.5 < float(namespace["chi2r"]) < 1.6
