"""The name of the machine the benchmarks run on: its GPU, or its CPU model and core count.

Results are stored under ``benchmarks/results/<machine>/``, so results of different
machines are never compared with each other.
"""

from __future__ import annotations

import os
import platform
import re

__all__ = ["cpu_model", "describe", "gpu_name", "machine_name"]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo") as stream:
            for line in stream:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown-cpu"


def gpu_name() -> str | None:
    """The name of JAX's first accelerator (e.g. ``NVIDIA H100 80GB HBM3``), or None."""
    import jax

    if jax.default_backend() == "cpu":
        return None
    return jax.devices()[0].device_kind


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def machine_name() -> str:
    """``gpu-<name>`` when JAX runs on an accelerator, else ``cpu-<model>-<cores>cores``.

    >>> machine_name()  # doctest: +SKIP
    'cpu-amd-epyc-2cores'
    """
    gpu = gpu_name()
    if gpu is not None:
        return f"gpu-{_slug(gpu)}"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"cpu-{_slug(cpu_model())}-{cores}cores"


def describe() -> dict[str, str | int | None]:
    """What the reports print about the machine."""
    import jax

    return {
        "machine": machine_name(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "gpu": gpu_name(),
        "backend": jax.default_backend(),
    }
