"""Shared helpers of the benchmark scripts: machine description, repeated timing, medians.

Every script prints a Markdown block (machine, command, figures as medians over the
repeats, with the load average at each measurement) that goes into docs/PERFORMANCE.md.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (or platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def ram_gib() -> float:
    """Total memory in GiB (from /proc/meminfo; 0 when unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def load_avg() -> str:
    """The 1-minute load average (what `uptime` prints first)."""
    return f"{os.getloadavg()[0]:.2f}"


#: The load when the script started (the headers are printed at the end of a run).
START_LOAD = f"{os.getloadavg()[0]:.2f}"


def machine() -> str:
    """One line: CPU, cores usable here, RAM, GPU (if any), library versions, load."""
    import numpy
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cpu_model()}, {cores} cores, {ram_gib():.0f} GiB RAM, {gpu}; Python {platform.python_version()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} intra-op threads), numpy {numpy.__version__}; "
        f"load average (1 min) at start {START_LOAD}"
    )


def command() -> str:
    """The command line that ran this script (for the report)."""
    return " ".join(["python -m bench." + Path(sys.argv[0]).stem, *sys.argv[1:]])


def timed(fn: Callable[[], object]) -> float:
    """Wall seconds of one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    return statistics.median(values)


def fmt_runs(values: list[float], unit: str = "s", digits: int = 3) -> str:
    """``median (runs: a, b, c)``."""
    runs = ", ".join(f"{v:.{digits}f}" for v in values)
    return f"{median(values):.{digits}f} {unit} (runs: {runs})"


def header(title: str) -> str:
    """Markdown heading with the machine and the command."""
    return f"### {title}\n\nMachine: {machine()}\n\nCommand: `{command()}`\n"
