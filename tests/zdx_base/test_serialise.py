"""zdx_base.save / load: equinox's leaf format, names and versions beside the leaves,
a clear refusal for a file that does not fit, and no overwriting unless asked."""

import json
import tempfile

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as onp
import pytest

import zdx_base


class Star(zdx_base.Base):
    position: jax.Array
    flux: jax.Array
    label: str = eqx.field(static=True)
    spectrum: dict


class Planet(zdx_base.Base):
    position: jax.Array
    flux: jax.Array
    label: str = eqx.field(static=True)
    spectrum: dict


def make_star(shift=0.0, label="blue"):
    return Star(
        position=jnp.array([0.5, -1.0]) + shift,
        flux=jnp.array(3.0) + shift,
        label=label,
        spectrum={"weights": jnp.arange(4.0) + shift, "order": 2, "scale": 1.5 + shift},
    )


@pytest.fixture()
def saved(tmp_path):
    star = make_star(0.25)
    return star, zdx_base.save(tmp_path / "star.eqx", star)


def test_round_trip_restores_every_leaf_into_a_skeleton(saved):
    star, path = saved
    skeleton = eqx.filter_eval_shape(make_star)
    loaded = zdx_base.load(path, like=skeleton)
    assert isinstance(loaded, Star)
    assert eqx.tree_equal(loaded, star)
    assert loaded.spectrum["order"] == 2 and isinstance(loaded.spectrum["order"], int)
    assert loaded.spectrum["scale"] == 1.75


def test_equinox_reads_the_file_as_it_is(saved):
    star, path = saved
    loaded = eqx.tree_deserialise_leaves(path, make_star())
    assert eqx.tree_equal(loaded, star)


def test_equinox_files_are_ours_with_the_leaves_first(tmp_path):
    # the leaves section is byte for byte what equinox writes for the same tree
    tree = {"a": jnp.arange(3.0), "b": onp.ones((2, 2), onp.float32), "c": 7}
    ours = zdx_base.save(tmp_path / "ours.eqx", tree)
    eqx.tree_serialise_leaves(tmp_path / "theirs.eqx", tree)
    theirs = (tmp_path / "theirs.eqx").read_bytes()
    assert ours.read_bytes()[: len(theirs)] == theirs


def test_names_and_versions_are_stored_beside_the_leaves(tmp_path):
    params = {"wfe": jnp.zeros(3), "position": {"blue": jnp.ones(2)}, "flux": 2.0}
    path = zdx_base.save(tmp_path / "params", params, metadata={"chi2r": 0.98})
    assert path.name == "params.eqx"  # equinox's suffix rule
    info = zdx_base.saved_info(path)
    assert info.names == zdx_base.ravel(params).names
    assert info.type == "builtins.dict"
    assert info.versions["zdx-base"] == zdx_base.__version__
    assert info.versions["jax"] == jax.__version__
    assert info.versions["equinox"] == eqx.__version__
    assert info.metadata == {"chi2r": 0.98}
    assert [leaf.path for leaf in info.leaves] == ["flux", "position.blue", "wfe"]
    assert info.leaves[1] == zdx_base.LeafInfo("position.blue", "array", (2,), "float64")


def test_a_model_with_strings_and_functions_keeps_them_from_like(tmp_path):
    tree = {"name": "blue", "weights": jnp.ones(2), "fn": jnp.sin}
    path = zdx_base.save(tmp_path / "mixed.eqx", tree)
    like = {"name": "red", "weights": jnp.zeros(2), "fn": jnp.cos}
    loaded = zdx_base.load(path, like=like)
    assert loaded["name"] == "red" and loaded["fn"] is jnp.cos
    assert jnp.array_equal(loaded["weights"], jnp.ones(2))
    assert zdx_base.saved_info(path).names == ("weights[0]", "weights[1]")


def test_a_network_round_trips():
    network = eqx.nn.MLP(3, 2, width_size=4, depth=1, key=jr.key(0))
    other = eqx.nn.MLP(3, 2, width_size=4, depth=1, key=jr.key(1))
    with tempfile.TemporaryDirectory() as folder:
        path = zdx_base.save(f"{folder}/mlp.eqx", network)
        loaded = zdx_base.load(path, like=other)
    x = jnp.arange(3.0)
    assert jnp.array_equal(loaded(x), network(x))


def test_saving_never_overwrites_unless_asked(saved):
    star, path = saved
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match=r"star\.eqx.*overwrite=True"):
        zdx_base.save(path, make_star(5.0))
    assert path.read_bytes() == before
    zdx_base.save(path, make_star(5.0), overwrite=True)
    assert eqx.tree_equal(zdx_base.load(path, like=star), make_star(5.0))
    assert sorted(p.name for p in path.parent.iterdir()) == ["star.eqx"]  # no temporary left


def test_a_skeleton_of_another_shape_names_the_first_differing_leaf(saved):
    _, path = saved
    like = eqx.tree_at(lambda s: s.spectrum["weights"], make_star(), jnp.zeros(5))
    with pytest.raises(ValueError, match=r"first leaf that differs is 'spectrum\.weights'.*\(4,\)"):
        zdx_base.load(path, like=like)


def test_a_skeleton_of_another_dtype_is_refused(saved):
    _, path = saved
    like = eqx.tree_at(lambda s: s.flux, make_star(), jnp.array(3.0, jnp.float32))
    with pytest.raises(ValueError, match=r"'flux'.*float64.*float32"):
        zdx_base.load(path, like=like)


def test_a_skeleton_with_other_keys_names_them(tmp_path):
    path = zdx_base.save(tmp_path / "p.eqx", {"a": jnp.ones(2), "b": jnp.ones(3)})
    with pytest.raises(ValueError, match="'c' in `like`, where the file has 'b'"):
        zdx_base.load(path, like={"a": jnp.ones(2), "c": jnp.ones(3)})
    with pytest.raises(ValueError, match="first leaf missing from `like` is 'b'"):
        zdx_base.load(path, like={"a": jnp.ones(2)})
    with pytest.raises(ValueError, match="first leaf of `like` missing from the file is 'c'"):
        zdx_base.load(path, like={"a": jnp.ones(2), "b": jnp.ones(3), "c": jnp.ones(1)})


def test_another_model_is_refused_by_type(saved):
    _, path = saved
    spectrum = {"weights": jnp.zeros(4), "order": 2, "scale": 1.0}
    planet = Planet(jnp.zeros(2), jnp.ones(()), "p", spectrum)
    with pytest.raises(ValueError, match=r"holds a .*Star, but `like` is a .*Planet"):
        zdx_base.load(path, like=planet)


@pytest.mark.parametrize("keep", [0, 10, 100, -1, -17])
def test_a_truncated_file_is_refused(saved, keep):
    _, path = saved
    content = path.read_bytes()
    path.write_bytes(content[:keep])
    with pytest.raises(ValueError, match="not a complete zdx-base save file"):
        zdx_base.load(path, like=make_star())


def test_a_corrupted_leaf_is_refused(saved):
    _, path = saved
    content = bytearray(path.read_bytes())
    info_size = int.from_bytes(content[-16:-8], "little")
    content[len(content) - 16 - info_size - 1] ^= 0xFF  # the last byte of the last leaf
    path.write_bytes(bytes(content))
    with pytest.raises(ValueError, match="checksum"):
        zdx_base.load(path, like=make_star())


def test_a_plain_equinox_file_is_refused_with_a_pointer(tmp_path):
    path = tmp_path / "plain.eqx"
    eqx.tree_serialise_leaves(path, make_star())
    with pytest.raises(ValueError, match=r"equinox\.tree_deserialise_leaves"):
        zdx_base.load(path, like=make_star())


def test_a_newer_format_is_refused_naming_both_versions(saved):
    _, path = saved
    content = path.read_bytes()
    size = int.from_bytes(content[-16:-8], "little")
    start = len(content) - 16 - size
    description = json.loads(content[start:-16])
    description["format"] = zdx_base._serialise.FORMAT + 1
    description["versions"]["zdx-base"] = "9.0.0"
    text = json.dumps(description).encode()
    path.write_bytes(content[:start] + text + len(text).to_bytes(8, "little") + content[-8:])
    with pytest.raises(ValueError, match=r"file format 2, written by zdx-base 9\.0\.0.*Upgrade"):
        zdx_base.load(path, like=make_star())
    with pytest.raises(ValueError, match="file format 2"):
        zdx_base.saved_info(path)


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(TypeError, match=r"zdx_base\.save: `path` must be a str"):
        zdx_base.save(3, {"a": 1.0})
    with pytest.raises(TypeError, match=r"save: overwrite must be True or False, got str 'yes'"):
        zdx_base.save(tmp_path / "x.eqx", {"a": 1.0}, overwrite="yes")
    with pytest.raises(TypeError, match="`metadata` must hold only JSON"):
        zdx_base.save(tmp_path / "x.eqx", {"a": 1.0}, metadata={"f": object()})
    assert not (tmp_path / "x.eqx").exists()
    with pytest.raises(FileNotFoundError):
        zdx_base.load(tmp_path / "missing.eqx", like={"a": 1.0})
