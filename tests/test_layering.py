"""The layering rule: a package imports only packages on lower rows, and only what it declares.

Two independent checks: import-linter's layers contract (``.importlinter`` at the root) over
the installed packages, and a scan of every source file's imports against the rows and the
dependencies declared in each package's ``pyproject.toml``. Both are shown to fail on an
upward import.
"""

import ast
import importlib.metadata
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

import pytest
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
ROWS = {"zdx_base": 0, "zdx_stats": 1, "zdx_batching": 2, "zdx_opt": 3, "zdx_sample": 4}
TOP = {"zodiax": 5, "zdx_examples": 6}  # imported by nothing in packages/
ALIASES = {"dlux": "dLux"}  # distributions whose import name is not the normalised name


def _normalise(requirement: str) -> str:
    name = re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def _import_names(dist: str) -> set[str]:
    if dist.startswith("zdx-") or dist == "zodiax":
        return {dist.replace("-", "_")}
    names = {ALIASES.get(dist, dist.replace("-", "_"))}
    try:
        files = importlib.metadata.distribution(dist).read_text("top_level.txt") or ""
        names |= set(files.split())
    except importlib.metadata.PackageNotFoundError:
        pass
    for module, dists in importlib.metadata.packages_distributions().items():
        if any(_normalise(d) == dist for d in dists):
            names.add(module)
    return names


def _imports(source_file: pathlib.Path):
    tree = ast.parse(source_file.read_text(), filename=str(source_file))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


def find_violations(root: pathlib.Path) -> list[str]:
    """Every import that breaks the layering rule in the packages under ``root``."""
    rows = {**ROWS, **TOP}
    problems = []
    projects = [*(root / "packages").glob("*/pyproject.toml"), root / "examples/pyproject.toml"]
    for project in sorted(projects):
        if not project.exists():
            continue
        meta = tomllib.loads(project.read_text())["project"]
        declared = set()
        optional = [r for extra in meta.get("optional-dependencies", {}).values() for r in extra]
        for requirement in [*meta.get("dependencies", []), *optional]:
            declared |= _import_names(_normalise(requirement))
        for source in sorted(project.parent.glob("src/*/**/*.py")):
            own = source.relative_to(project.parent / "src").parts[0]
            own_row = rows.get(own)
            for line, name in _imports(source):
                where = f"{source.relative_to(root)}:{line}"
                if name == own or name in sys.stdlib_module_names or name == "__future__":
                    continue
                if name in rows and own_row is not None and own in ROWS and rows[name] >= own_row:
                    problems.append(
                        f"{where} imports {name}, which is not on a lower row than {own}"
                    )
                elif name not in declared:
                    declaring = project.relative_to(root)
                    problems.append(f"{where} imports {name}, which {declaring} does not declare")
    return problems


def test_packages_import_only_lower_rows_and_declared_dependencies():
    assert find_violations(ROOT) == []


def _write_package(root, dist, body, dependencies=()):
    folder = root / "packages" / dist
    source = folder / "src" / dist.replace("-", "_")
    source.mkdir(parents=True)
    (source / "__init__.py").write_text(textwrap.dedent(body))
    deps = ", ".join(f'"{d}"' for d in dependencies)
    (folder / "pyproject.toml").write_text(f'[project]\nname = "{dist}"\ndependencies = [{deps}]\n')


def test_scan_catches_upward_and_undeclared_imports(tmp_path):
    _write_package(tmp_path, "zdx-base", "import zdx_opt\n", ["zdx-opt"])
    _write_package(tmp_path, "zdx-stats", "import equinox\nimport math\n")
    _write_package(tmp_path, "zdx-opt", "import zdx_base\n", ["zdx-base"])
    problems = find_violations(tmp_path)
    assert len(problems) == 2, problems
    assert "zdx_base/__init__.py:1 imports zdx_opt, which is not on a lower row" in problems[0]
    assert "imports equinox, which packages/zdx-stats/pyproject.toml does not" in problems[1]


def _lint_imports(config: pathlib.Path, cwd: pathlib.Path, pythonpath: str | None = None):
    exe = shutil.which("lint-imports") or str(pathlib.Path(sys.executable).parent / "lint-imports")
    env = None
    if pythonpath:
        import os

        env = {**os.environ, "PYTHONPATH": pythonpath}
    return subprocess.run(
        [exe, "--config", str(config)], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_import_linter_layers_contract_is_kept():
    pytest.importorskip("importlinter")
    result = _lint_imports(ROOT / ".importlinter", ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_linter_fails_on_an_upward_import(tmp_path):
    pytest.importorskip("importlinter")
    for name, body in [("low_pkg", "import high_pkg\n"), ("high_pkg", "")]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(body)
    config = tmp_path / "contract.ini"
    contract = (ROOT / ".importlinter").read_text()
    layers = "\n    high_pkg\n    low_pkg\n"
    config.write_text(
        re.sub(
            r"root_packages =[^\[]*", "root_packages =\n    low_pkg\n    high_pkg\n\n", contract
        ).split("layers =")[0]
        + "layers ="
        + layers
    )
    result = _lint_imports(config, tmp_path, pythonpath=str(tmp_path))
    assert result.returncode != 0
    assert "low_pkg -> high_pkg" in result.stdout
