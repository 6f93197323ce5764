"""What every benchmark shares: the machine's description, child-process measurement, and RESULTS.md sections."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "RESULTS.md"


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor() or platform.machine(),
    )
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    import torch

    return (
        f"{cpu}, {os.cpu_count()} cores, {mem_kib / 2**20:.0f} GiB RAM, no GPU; "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )


@dataclass
class Measured:
    wall_s: float
    peak_rss_mib: float  # the largest single process the command started (ru_maxrss of its children)
    stdout: str


# a fresh parent per measurement: ru_maxrss of RUSAGE_CHILDREN is a running maximum over a process's children
WRAPPER = (
    "import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(rc)"
)


def run_measured(args: list[str], cwd: Path = REPO, env: dict[str, str] | None = None) -> Measured:
    """Run a command to completion: wall time, and the peak resident memory of its biggest process."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    peak_kib = int(proc.stderr.strip().splitlines()[-1])
    return Measured(wall, peak_kib / 1024, proc.stdout)


def record(title: str, body: list[str]) -> None:
    """Replace (or append) the `## title` section of RESULTS.md, stamped with the date and machine."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = "\n".join([f"## {title}", "", f"Recorded {stamp} on {machine()}.", "", *body]).rstrip() + "\n"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    RESULTS.write_text(text)
    print("\n".join(body), flush=True)
