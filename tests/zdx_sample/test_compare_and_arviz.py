"""compare: evidence tables with Bayes factors and disagreement warnings; results as
ArviZ InferenceData named by parameter."""

import math
import warnings

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

import zdx_sample as zs


def one_bump(p):
    return -0.5 * jnp.sum((p["a"] / 0.2) ** 2) - math.log(2 * math.pi * 0.04)


PRIOR_NARROW = {"a": dist.Uniform(-2.0, 2.0).expand([2])}
PRIOR_WIDE = {"a": dist.Uniform(-6.0, 6.0).expand([2])}


@pytest.fixture(scope="module")
def fits():
    start = {"a": jnp.zeros(2)}
    return {
        "narrow": zs.laplace(one_bump, start, PRIOR_NARROW, importance_samples=1000),
        "wide": zs.laplace(one_bump, start, PRIOR_WIDE, importance_samples=1000),
        "nuts": zs.nuts(
            one_bump,
            start,
            PRIOR_NARROW,
            num_warmup=100,
            num_samples=200,
            num_chains=2,
            progress=False,
        ),
        "ns": zs.nested_sampling(
            one_bump, PRIOR_NARROW, num_live=100, termination=0.01, progress=False
        ),
        "vi": zs.variational(
            one_bump, start, PRIOR_NARROW, num_steps=50, progress=False, importance_samples=500
        ),
    }


def test_bayes_factor_of_two_priors_is_the_ratio_of_volumes(fits):
    # the same likelihood well inside both boxes: B = V_wide / V_narrow = 9
    table = zs.compare({"narrow": fits["narrow"], "wide": fits["wide"]})
    assert table.reference == "narrow"
    assert abs(table.log_bayes_factors["wide"] + math.log(9.0)) < 0.05  # importance-sampled
    laplace_rows = {r.model: r for r in table.rows if r.estimator == "laplace"}
    laplace_b = laplace_rows["wide"].log_evidence - laplace_rows["narrow"].log_evidence
    assert abs(laplace_b + math.log(9.0)) < 1e-9
    assert table.log_bayes_factors["narrow"] == 0.0
    assert table.disagreements == ()
    text = str(table)
    assert "laplace+is" in text and "log B = log Z - log Z['narrow']" in text
    # the estimate with an error is the one used
    assert table.log_evidence["wide"][1] is not None
    rows = [r for r in table.rows if r.model == "wide"]
    assert [r.estimator for r in rows] == ["laplace", "laplace+is"]


def test_estimators_of_one_model_agree(fits):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = zs.compare({"bump": [fits["narrow"], fits["ns"], fits["vi"]]}, reference="bump")
    assert {r.estimator for r in table.rows} == {
        "laplace",
        "laplace+is",
        "nested_sampling",
        "elbo",
        "variational+is",
    }
    assert [r.note for r in table.rows if r.estimator == "elbo"] == ["lower bound"]


def test_disagreement_beyond_the_errors_warns():
    with pytest.warns(
        UserWarning, match="differ by 1.0000, more than 3 x their combined error 0.1414"
    ):
        table = zs.compare({"m": [(-10.0, 0.1), (-11.0, 0.1)], "n": -12.0})
    assert len(table.disagreements) == 1
    assert abs(table.log_bayes_factors["n"] + 2.0) < 1e-12
    # lower bounds and estimates flagged unreliable are shown but not checked
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zs.compare(
            {
                "m": [
                    (-10.0, 0.1),
                    zs.EvidenceEstimate("elbo", -13.0, 0.01, bound=True),
                    zs.EvidenceEstimate("laplace+is", -20.0, 0.01, reliable=False),
                ]
            }
        )


def test_compare_bad_input():
    with pytest.raises(ValueError, match="non-empty mapping"):
        zs.compare({})
    with pytest.raises(TypeError, match="model 'm' must be a result"):
        zs.compare({"m": "big"})
    with pytest.raises(ValueError, match="`reference` must be one of the models"):
        zs.compare({"m": -1.0}, reference="x")
    with pytest.raises(ValueError, match="not finite"):
        zs.compare({"m": (float("nan"), 0.1)})


@pytest.mark.parametrize("name", ["narrow", "nuts", "ns", "vi"])
def test_results_convert_to_inference_data_with_named_parameters(fits, name):
    res = fits[name]
    idata = (
        zs.to_inference_data(res)
        if name in ("nuts", "ns")
        else zs.to_inference_data(res, key=1, num_samples=300)
    )
    post = idata.posterior["params"]
    assert post.dims == ("chain", "draw", "parameter")
    assert list(post.coords["parameter"].values) == ["a[0]", "a[1]"]
    if name == "nuts":
        assert post.shape == (2, 200, 2)
        assert idata.sample_stats["diverging"].shape == (2, 200)
        np.testing.assert_allclose(post.values, np.asarray(res.draws))
    elif name == "ns":
        assert post.shape == (1, res.num_samples, 2)
        assert idata.attrs["log_evidence"] == pytest.approx(float(res.log_evidence))
    else:
        assert post.shape == (1, 300, 2)
    np.testing.assert_allclose(post.values.reshape(-1, 2).std(0), [0.2, 0.2], rtol=0.25)


def test_to_inference_data_refuses_other_objects():
    with pytest.raises(TypeError, match="must be a result of laplace"):
        zs.to_inference_data({"a": 1})
