"""save_result / load_result: every result comes back with every field it held; the draws
go to ArviZ netCDF; files that do not fit are refused clearly."""

import dataclasses
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

import zdx_base
import zdx_sample as zs

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # arviz announces its refactor
    import arviz

PRIOR = {"a": dist.Uniform(-3.0, 3.0).expand([2]), "b": dist.Normal(0.0, 2.0)}
START = {"a": jnp.array([0.1, -0.2]), "b": jnp.array(0.3)}


def loglike(p):
    return -0.5 * jnp.sum((p["a"] / 0.3) ** 2) - 0.5 * ((p["b"] - 0.5) / 0.4) ** 2


@pytest.fixture(scope="module")
def results():
    return {
        "laplace": zs.laplace(loglike, START, PRIOR, optimise=True, importance_samples=300),
        "nuts": zs.nuts(
            loglike, START, PRIOR, num_warmup=50, num_samples=60, num_chains=2, progress=False
        ),
        "nested": zs.nested_sampling(loglike, PRIOR, num_live=60, termination=0.05, progress=False),
        "variational": zs.variational(
            loglike, START, PRIOR, num_steps=30, progress=False, importance_samples=200
        ),
    }


def assert_same(loaded, original, where="result"):
    """Equal field by field: arrays in value, dtype and shape; other values by ==; the
    unflatten function by what it gives for the same vector."""
    assert type(loaded) is type(original), where
    if isinstance(original, eqx.Module):
        names = [f.name for f in dataclasses.fields(original)]
        assert [f.name for f in dataclasses.fields(loaded)] == names
        for name in names:
            assert_same(getattr(loaded, name), getattr(original, name), f"{where}.{name}")
    elif isinstance(original, (jax.Array, np.ndarray)):
        assert original.shape == loaded.shape and original.dtype == loaded.dtype, where
        assert np.array_equal(np.asarray(loaded), np.asarray(original), equal_nan=True), where
    elif isinstance(original, dict):
        assert list(loaded) == list(original), where
        for k in original:
            assert_same(loaded[k], original[k], f"{where}[{k!r}]")
    elif isinstance(original, (tuple, list)):
        assert len(loaded) == len(original), where
        for i, (x, y) in enumerate(zip(loaded, original)):
            assert_same(x, y, f"{where}[{i}]")
    elif callable(original):
        vector = jnp.arange(3.0) + 0.5
        assert eqx.tree_equal(loaded(vector), original(vector)), where
    else:
        assert loaded == original, where


@pytest.mark.parametrize("kind", ["laplace", "nuts", "nested", "variational"])
def test_every_result_round_trips_with_every_field(results, kind, tmp_path):
    result = results[kind]
    path = zs.save_result(tmp_path / kind, result)
    assert path.suffix == ".eqx"
    loaded = zs.load_result(path, params=START)
    assert_same(loaded, result)
    # arrays, diagnostics and methods work on the loaded result as on the original
    if hasattr(result, "sigma"):
        assert eqx.tree_equal(loaded.sigma, result.sigma)
    arrays = eqx.filter(result, eqx.is_array)
    assert eqx.tree_equal(eqx.filter(loaded, eqx.is_array), arrays)


def test_loaded_results_keep_working(results, tmp_path):
    laplace = zs.load_result(zs.save_result(tmp_path / "l", results["laplace"]), START)
    assert float(laplace.log_evidence) == float(results["laplace"].log_evidence)
    assert laplace.corrected_log_evidence == results["laplace"].corrected_log_evidence
    draws = laplace.sample(jax.random.key(1), 5)
    assert eqx.tree_equal(draws, results["laplace"].sample(jax.random.key(1), 5))
    nuts = zs.load_result(zs.save_result(tmp_path / "n", results["nuts"]), START)
    assert nuts.summary() == results["nuts"].summary()
    variational = zs.load_result(zs.save_result(tmp_path / "v", results["variational"]), START)
    table = zs.compare({"m": variational})
    assert table.rows == zs.compare({"m": results["variational"]}).rows


def test_the_skeleton_may_be_shapes_only(results, tmp_path):
    path = zs.save_result(tmp_path / "nuts", results["nuts"])
    skeleton = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), START)
    assert_same(zs.load_result(path, skeleton), results["nuts"])


def test_parameters_of_another_model_are_refused(results, tmp_path):
    path = zs.save_result(tmp_path / "nuts", results["nuts"])
    with pytest.raises(ValueError, match=r"scalar 2 is 'c' in `params` and 'b' in the file"):
        zs.load_result(path, {"a": jnp.zeros(2), "c": jnp.zeros(())})
    with pytest.raises(ValueError, match="it has 4 scalars, the file 3"):
        zs.load_result(path, {"a": jnp.zeros(2), "b": jnp.zeros(()), "d": jnp.zeros(())})
    with pytest.raises(ValueError, match="dtypes"):
        zs.load_result(path, {"a": jnp.zeros(2, jnp.float32), "b": jnp.zeros(())})


def test_a_model_file_is_not_a_result(tmp_path):
    path = zdx_base.save(tmp_path / "model", START)
    with pytest.raises(ValueError, match=r"not a saved result; load it with zdx_base\.load"):
        zs.load_result(path, START)


def test_a_truncated_result_is_refused_and_existing_files_are_kept(results, tmp_path):
    path = zs.save_result(tmp_path / "l", results["laplace"])
    with pytest.raises(FileExistsError, match="overwrite=True"):
        zs.save_result(path, results["nuts"])
    zs.save_result(path, results["nuts"], overwrite=True)
    assert isinstance(zs.load_result(path, START), zs.NUTSResult)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(ValueError, match="not a complete zdx-base save file"):
        zs.load_result(path, START)


def test_what_is_not_a_result_is_refused(tmp_path):
    with pytest.raises(TypeError, match=r"`result` must be a result of laplace.*dict"):
        zs.save_result(tmp_path / "x", {"a": jnp.ones(2)})
    assert not list(tmp_path.iterdir())


def test_nuts_draws_export_to_arviz_netcdf(results, tmp_path):
    result = results["nuts"]
    path = zs.save_netcdf(tmp_path / "draws.nc", result)
    data = arviz.from_netcdf(path)
    assert np.array_equal(data.posterior["params"].values, np.asarray(result.draws))
    assert list(data.posterior["parameter"].values) == list(result.names)
    assert np.array_equal(data.sample_stats["diverging"].values, np.asarray(result.diverging))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        zs.save_netcdf(path, result)


def test_laplace_draws_export_with_a_key(results, tmp_path):
    path = zs.save_netcdf(tmp_path / "l.nc", results["laplace"], key=0, num_samples=20)
    data = arviz.from_netcdf(path)
    assert data.posterior["params"].shape == (1, 20, 3)


def test_fields_of_any_kind_round_trip(results, tmp_path):
    # whatever a result type holds: nested containers, numbers, None, NumPy arrays, keys
    odd = dataclasses.replace(
        results["nuts"],
        chain_method={"a": (1, 2.5, None, "x", True), "b": ["y"]},
        divergences=[np.float32(0.5), None],
        diverging=np.arange(6).reshape(2, 3),
        log_density=jax.random.key(3),
    )
    loaded = zs.load_result(zs.save_result(tmp_path / "odd", odd), START)
    assert loaded.chain_method == odd.chain_method
    assert type(loaded.chain_method["a"][1]) is float and loaded.chain_method["a"][4] is True
    assert loaded.divergences[0] == np.float32(0.5) and loaded.divergences[1] is None
    assert loaded.divergences[0].dtype == np.float32
    assert isinstance(loaded.diverging, np.ndarray)
    assert np.array_equal(loaded.diverging, odd.diverging)
    key_data = jax.random.key_data
    assert np.array_equal(key_data(loaded.log_density), key_data(odd.log_density))


def test_a_field_that_cannot_be_saved_is_named(results, tmp_path):
    odd = dataclasses.replace(results["nuts"], chain_method=object())
    with pytest.raises(TypeError, match=r"cannot save NUTSResult\.chain_method of type object"):
        zs.save_result(tmp_path / "odd", odd)
    assert not list(tmp_path.iterdir())


def test_a_newer_result_format_is_refused(results, tmp_path, monkeypatch):
    path = zs.save_result(tmp_path / "l", results["laplace"])
    monkeypatch.setattr(zs._io, "FORMAT", 0)
    with pytest.raises(ValueError, match=r"result format 1, written by zdx-sample .*Upgrade"):
        zs.load_result(path, START)


def test_a_function_other_than_the_unflattening_is_not_passed_off_as_it(results, tmp_path):
    odd = dataclasses.replace(results["nuts"], chain_method=jnp.sin)
    with pytest.raises(TypeError, match=r"cannot save NUTSResult\.chain_method of type"):
        zs.save_result(tmp_path / "odd", odd)
