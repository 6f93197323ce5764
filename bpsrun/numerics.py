"""What decides a campaign's floats on the CPU besides its seed: the torch thread count and the instruction set
torch's kernels are built for. `trainer.threads` (1 by default, on every launcher) and `trainer.cpu_kernels` (AVX2
code paths by default) fix both, and every round records them with the machine it ran on (runtime.json, MLflow
`runtime.*` params), so that a difference can be traced.

Measured (benchmarks/RESULTS.md, "Same seed, any machine"): oneDNN's convolutions and ATen's softmax change with
the instruction set, and with AVX-512 kernels convolutions change with the thread count too. With AVX2 kernels
single steps keep their bits at 1 and 2 threads, but a whole SimCLR training does not (MKL's products are only
reproducible at a fixed thread count), so only a fixed thread count gives the same campaign.
"""

from __future__ import annotations

import logging
import os
import platform
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

log = logging.getLogger("bpsrun")

# Each library reads its variable when it first runs a kernel, so they hold when set before any torch work.
KERNELS: dict[str, dict[str, str]] = {
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",  # torch's own vectorised kernels (softmax, reductions)
        "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN's convolutions (its JIT picks per ISA, each with its own sums)
        "MKL_CBWR": "AVX2",  # MKL's matrix products: the AVX2 code path on Intel and AMD alike
    },
    "native": {},  # what the CPU offers best (AVX-512 where present): faster there, other floats
}
# What the runtime record compares: a resumed campaign that differs in these says so.
COMPARED = ("threads", "cpu_kernels", "cpu_capability", "cpu", "torch")


def torch_threads(cfg: DictConfig) -> int:
    """`trainer.threads`, else the CPUs this job was given rather than torch's all cores: the CPUs the process may
    run on, capped by OMP_NUM_THREADS (Ray sets it to a task's num_cpus) and by the launcher's `cpus_per_task`
    (SLURM confines a job to it; submitit_local does not)."""
    if cfg.trainer.get("threads"):
        return int(cfg.trainer.threads)
    given = [len(os.sched_getaffinity(0)), os.environ.get("OMP_NUM_THREADS", "")]
    if HydraConfig.initialized():
        given.append(HydraConfig.get().launcher.get("cpus_per_task"))
    return min(int(n) for n in given if str(n).isdigit() and int(n) > 0)


def configure(cfg: DictConfig) -> None:
    """This process's torch threads and CPU kernels, from the `trainer` config, before its first torch kernel."""
    import torch

    pin_cpu_kernels(cfg.trainer.cpu_kernels)
    torch.set_num_threads(torch_threads(cfg))
    log.info("torch threads: %d, cpu kernels: %s", torch.get_num_threads(), cfg.trainer.cpu_kernels)


def pin_cpu_kernels(choice: str) -> None:
    """Set the kernel variables of `choice` (trainer.cpu_kernels); warn when torch already chose otherwise (it
    ran work in this process before: its kernels stay what they were then)."""
    import torch

    for name, value in KERNELS[choice].items():
        os.environ[name] = value
    wanted = KERNELS[choice].get("ATEN_CPU_CAPABILITY")
    actual = torch.backends.cpu.get_cpu_capability()
    if wanted is not None and actual.lower() != wanted and platform.machine() in ("x86_64", "AMD64"):
        log.warning(
            "trainer.cpu_kernels=%s: torch already runs %s kernels in this process, so its numbers may differ "
            "from a fresh process's; start bpsrun in its own process",
            choice,
            actual,
        )


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def numpy_blas() -> str:
    """numpy's BLAS and the kernel it picked for this CPU (selection's distances are numpy float64)."""
    from threadpoolctl import threadpool_info

    libs = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return ", ".join(f"{i['internal_api']} {i.get('version')} {i.get('architecture', '')}".strip() for i in libs)


def runtime(choice: str) -> dict[str, Any]:
    """This process's numerics: logged as MLflow params (`runtime.*`) and kept per round (round_<N>/runtime.json)."""
    import torch

    return {
        "threads": torch.get_num_threads(),
        "cpu_kernels": choice,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "torch_blas": "mkl" if torch.backends.mkl.is_available() else "other",
        "numpy_blas": numpy_blas(),
    }


def differences(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """`key: before -> now` for each compared key that changed."""
    return [f"{k}: {before.get(k)} -> {now.get(k)}" for k in COMPARED if before.get(k) != now.get(k)]
