"""The names zodiax users write exist, and are the very objects of the zdx-* packages."""

import importlib

import pytest

import zdx_base
import zdx_batching
import zdx_opt
import zdx_sample
import zdx_stats
import zodiax as zdx

# Every public top-level name of zodiax 0.5.0, and the package each comes from now.
ZODIAX_05_NAMES = {
    "Base": zdx_base,
    "EquinoxWrapper": zdx_base,
    "WrapperHolder": zdx_base,
    "build_wrapper": zdx_base,
    "calc_entropy": zdx_stats,
    "check_positive_semi_definite": zdx_stats,
    "check_symmetric": zdx_stats,
    "chi2": zdx_stats,
    "chi2r": zdx_stats,
    "chi2r_from_z": zdx_stats,
    "ddof": zdx_stats,
    "gauss_hessian": zdx_stats,
    "loglike": zdx_stats,
    "mv_loglike": zdx_stats,
    "mv_z_score": zdx_stats,
    "z_score": zdx_stats,
    "debug_nan_check": zdx_opt,
    "decompose": zdx_opt,
    "delay": zdx_opt,
    "eigen_projection": zdx_opt,
    "map_optimisers": zdx_opt,
    "zero_nan_check": zdx_opt,
    "hessian": zdx_batching,
    "hessian_to_pytree": zdx_batching,
    "jacobian": zdx_batching,
}


@pytest.mark.parametrize("name", sorted(ZODIAX_05_NAMES))
def test_zodiax_05_top_level_names_are_the_package_objects(name):
    assert getattr(zdx, name) is getattr(ZODIAX_05_NAMES[name], name)


@pytest.mark.parametrize(
    "module, package",
    [
        ("base", zdx_base),
        ("stats", zdx_stats),
        ("batching", zdx_batching),
        ("diffops", zdx_batching),
        ("optimisation", zdx_opt),
        ("sample", zdx_sample),
    ],
)
def test_submodules_are_the_packages(module, package):
    assert getattr(zdx, module) is package
    assert importlib.import_module(f"zodiax.{module}") is package


def test_the_tutorial_imports():
    namespace = {}
    exec(
        "from zodiax import stats\n"
        "from zodiax import optimisation as opt\n"
        "from zodiax import batching\n"
        "from zodiax.optimisation import delay\n",
        namespace,
    )
    assert namespace["opt"] is zdx_opt and namespace["delay"] is zdx_opt.delay


def test_version_satisfies_what_published_clients_ask_for():
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    version = Version(zdx.__version__)
    clients = {"dLuxToliman 0.5.1": "==0.5.*", "dLux 0.15": ">=0.5", "virgil-astro": ">=0.4.1"}
    for client, wanted in clients.items():
        assert version in SpecifierSet(wanted), (client, wanted, version)
    # above every 0.5.x patch zodiax itself may publish, so the 0.5 series resolves to ours
    assert version > Version("0.5.99")
