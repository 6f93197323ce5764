"""Same seed, any machine: which stages' floats change with the torch thread count and the CPU kernels' instruction
set, and what fixing both costs in wall time.

Usage: python benchmarks/numerics.py [--outputs DIR] [--skip-campaigns]
Stages: each training or inference step bpsrun runs (the CNN's and SimCLR's, the linear probe's, prediction, the
embedding check's numpy products) on fixed random inputs in a fresh process per setting, compared by a digest of
its output bits. Campaigns: the README's main command cold, under each thread count x kernel setting; and one
experiment=compare_strategies campaign (one thread, as its sweep runs) under each kernel setting.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

from common import REPO, Measured, record, run_measured
from main_command import accuracies

SETTINGS = [(2, "native"), (2, "avx2"), (1, "native"), (1, "avx2")]  # (torch threads, trainer.cpu_kernels)

# One process per setting: the kernels are chosen at a process's first torch work.
STAGES = r"""
import hashlib, json, sys
import numpy as np, torch
from torch import nn
from bpsrun.numerics import pin_cpu_kernels
pin_cpu_kernels(sys.argv[2]); torch.set_num_threads(int(sys.argv[1]))
from bpsrun.embed.quality import knn_agreement
from bpsrun.model.networks import ProbeHead, SmallConvNet

def bits(t):
    if isinstance(t, nn.Module):
        t = torch.cat([p.detach().flatten() for p in t.state_dict().values() if p.dtype.is_floating_point])
    return hashlib.sha1(t.detach().contiguous().numpy().tobytes()).hexdigest()[:10]

def trained(batch, steps, size=96):
    torch.manual_seed(0)
    net = SmallConvNet(2, 1, 16, 0.0)
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    x, y = torch.rand(batch, 1, size, size, generator=g), torch.randint(0, 2, (batch,), generator=g)
    for _ in range(steps):
        loss = nn.functional.cross_entropy(net(x), y); opt.zero_grad(); loss.backward(); opt.step()
    return net

g = torch.Generator().manual_seed(0)
out = {}
out["CNN training (batch 16, 96 px, 5 steps)"] = bits(trained(16, 5))
out["SimCLR-sized training (batch 128, 96 px, 3 steps)"] = bits(trained(128, 3))
net = trained(16, 1).eval()
with torch.no_grad():
    out["prediction (CNN forward, batch 256)"] = bits(net(torch.rand(256, 1, 96, 96, generator=g)))
f, fy = torch.rand(200, 64, generator=g), torch.randint(0, 2, (200,), generator=g)
head = ProbeHead(f.mean(0), f.std(0), 2)
opt = torch.optim.AdamW(head.parameters(), 5e-2)
for _ in range(50):
    loss = nn.functional.cross_entropy(head(f), fy); opt.zero_grad(); loss.backward(); opt.step()
out["linear probe (50 steps on features)"] = bits(head)
x = np.random.default_rng(0).random((500, 256))
out["embedding check (numpy k-NN agreement)"] = repr(knn_agreement(x, np.arange(500) % 2))
print(json.dumps(out))
"""


def stage_bits() -> dict[tuple[int, str], dict[str, str]]:
    runs = {}
    for threads, kernels in SETTINGS:
        cmd = [sys.executable, "-c", STAGES, str(threads), kernels]
        runs[(threads, kernels)] = json.loads(subprocess.run(cmd, cwd=REPO, capture_output=True, check=True).stdout)
    return runs


def stage_table(runs: dict[tuple[int, str], dict[str, str]]) -> list[str]:
    """Per stage: does the thread count change it (under each kernel setting), does the kernel set change it."""
    rows = ["| stage | 1 vs 2 threads, native | 1 vs 2 threads, avx2 | native vs avx2, 1 thread |", "|---|---|---|---|"]
    same = {True: "same", False: "**differs**"}
    for stage in runs[SETTINGS[0]]:
        cells = [
            same[runs[(1, "native")][stage] == runs[(2, "native")][stage]],
            same[runs[(1, "avx2")][stage] == runs[(2, "avx2")][stage]],
            same[runs[(1, "native")][stage] == runs[(1, "avx2")][stage]],
        ]
        rows.append(f"| {stage} | {' | '.join(cells)} |")
    return rows


def files_digest(campaign: Path) -> str:
    """Every round's selected.txt and metrics.json: equal digests, byte-identical campaigns."""
    h = hashlib.sha1()
    for path in sorted(campaign.glob("round_*/selected.txt")) + sorted(campaign.glob("round_*/metrics.json")):
        h.update(path.read_bytes())
    return h.hexdigest()[:10]


def campaign_rows(outputs: Path) -> list[str]:
    rows = [
        "| command | threads | cpu_kernels | wall | val accuracy by round | files digest |",
        "|---|---|---|---|---|---|",
    ]
    commands = {
        "main command (`bpsrun round=2`, cold)": (["round=2"], SETTINGS, "synthetic-active-s0"),
        "compare_strategies campaign (`active`, seed 0, 3 rounds + full supervision, cold)": (
            ["experiment=compare_strategies", "selection=active", "seed=0"],
            [(1, "native"), (1, "avx2")],
            "cmp-synthetic-active-s0",
        ),
    }
    for name, (args, settings, campaign) in commands.items():
        for threads, kernels in settings:
            out = outputs / f"{campaign}-t{threads}-{kernels}"
            shutil.rmtree(out, ignore_errors=True)
            m: Measured = run_measured(
                [
                    sys.executable,
                    "-m",
                    "bpsrun",
                    *args,
                    f"trainer.threads={threads}",
                    f"trainer.cpu_kernels={kernels}",
                    f"paths.outputs={out}",
                ]  # fmt: skip
            )
            digest = files_digest(out / campaign)
            rows.append(f"| {name} | {threads} | {kernels} | {m.wall_s:.0f} s | {accuracies(m)} | `{digest}` |")
    return rows


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--outputs", type=Path, default=REPO / "outputs" / "benchmarks" / "numerics")
    parser.add_argument("--skip-campaigns", action="store_true", help="only the stage table (a minute)")
    args = parser.parse_args(argv)
    body = [
        "Which stages' floats change, by a digest of their output bits in a fresh process per setting "
        "(`benchmarks/numerics.py`; `native`: the CPU's own kernels, AVX-512 here):",
        "",
        *stage_table(stage_bits()),
    ]
    if not args.skip_campaigns:
        body += [
            "",
            "What the campaigns give and cost (same digest: byte-identical selected.txt and metrics.json):",
            "",
            *campaign_rows(args.outputs),
        ]
    record("Same seed, any machine: threads and CPU kernels", body)


if __name__ == "__main__":
    main(sys.argv[1:])
