"""No hatch environment of the workspace can install the registry's zodiax instead of ours."""

import pathlib

import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]
HATCH = tomllib.loads((ROOT / "hatch.toml").read_text())["envs"]
CLIENTS_OF_ZODIAX = ("dlux", "dluxtoliman", "virgil-astro")


def _wants_zodiax(env: dict) -> bool:
    members = env.get("workspace", {}).get("members", [])
    requirements = [r.lower() for r in env.get("dependencies", [])]
    return any(m in ("packages/*", "packages/zodiax") for m in members) or any(
        r.startswith(CLIENTS_OF_ZODIAX) for r in requirements
    )


# hatch's own environments do not inherit from `default` unless they name a template
INTERNAL = ("hatch-test", "hatch-build", "hatch-static-analysis", "hatch-uv")


def _sources(name: str) -> dict:
    """The `sources` hatch resolves for an environment: its own, else its template's
    (`default` unless it names another), as hatch's environment inheritance does."""
    env = HATCH.get(name, {})
    if "sources" in env:
        return env["sources"]
    if env.get("detached"):
        return {}
    template = env.get("template", None if name in INTERNAL else "default")
    if template is None or template == name:
        return {}
    return _sources(template)


def test_every_environment_that_can_pull_zodiax_takes_it_from_its_folder():
    checked = []
    for name, env in HATCH.items():
        if env.get("detached"):  # bench-zodiax05, zodiax05: zodiax 0.5.0 on purpose, alone
            continue
        if _wants_zodiax(env):
            assert _sources(name).get("zodiax") == "./packages/zodiax", name
            checked.append(name)
    assert {"default", "hatch-test", "examples", "bench", "clients"} <= set(checked)


def test_the_zodiax05_environments_hold_no_workspace_package():
    for name in ("zodiax05", "bench-zodiax05"):
        env = HATCH[name]
        assert env["detached"] and "workspace" not in env, name
        assert "zodiax==0.5.0" in env["dependencies"], name
