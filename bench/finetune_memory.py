"""Peak memory of a whole `evals finetune` against the estimate it printed before the first step.

Each setting runs `evals finetune TASK` as a user would, in its own process, while this script samples that
process's resident set every 0.2 s; the peak is the process's own (getrusage, from the adapter's manifest)
and the estimate is the one the plan printed. Between-step memory is shown as the lowest resident set in
each tenth of the training time, so growth over the run (memory held, not a step's activations) shows.

    .venv/bin/python bench/finetune_memory.py                         # the default fine-tune, bf16 and float32
    .venv/bin/python bench/finetune_memory.py --rows 72 --dtypes bfloat16   # a short check: 72 rows, 9 steps
    .venv/bin/python bench/finetune_memory.py --longest 40            # the 40 longest rows: the default's peak

Peak memory does not depend on how busy the machine is; the wall times do.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
EVALS = Path(sys.executable).with_name("evals")
ESTIMATE = re.compile(r"estimated peak ([\d.]+) GB")


def task_folder(task: str, rows: int | None, longest: int | None, tmp: Path) -> Path:
    """The task's folder, or a copy whose train.jsonl keeps only its first `rows` lines, or its `longest` longest
    lines (by characters, in their order): the rows that set the peak."""
    folder = ROOT / "golden_sets" / task
    if rows is None and longest is None:
        return folder
    copy = tmp / task
    shutil.copytree(folder, copy)
    lines = (folder / "train.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    if longest:
        keep = set(sorted(range(len(lines)), key=lambda i: -len(lines[i]))[:longest])
        lines = [line for i, line in enumerate(lines) if i in keep]
    (copy / "train.jsonl").write_text("".join(lines[:rows]), encoding="utf-8")
    return copy


def sample(proc: subprocess.Popen, samples: list[tuple[float, int]], stop: threading.Event) -> None:
    p = psutil.Process(proc.pid)
    while not stop.is_set():
        try:
            samples.append((time.monotonic(), p.memory_info().rss))
        except psutil.Error:
            return
        time.sleep(0.2)


def measure(task_dir: Path, dtype: str, extra: list[str], log: Path, label: str) -> dict:
    name = f"bench-memory-{label}{dtype}"
    cmd = [str(EVALS), "finetune", str(task_dir), "--name", name, "--force", "--dtype", dtype, "--progress",
           "plain", *extra]
    samples: list[tuple[float, int]] = []
    stop = threading.Event()
    start = time.monotonic()
    train_start = None
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        sampler = threading.Thread(target=sample, args=(proc, samples, stop), daemon=True)
        sampler.start()
        estimate = None
        for line in proc.stdout:
            out.write(line)
            out.flush()
            if m := ESTIMATE.search(line):
                estimate = float(m.group(1)) * 1e9
            if train_start is None and re.search(r"step \d+/\d+", line):
                train_start = time.monotonic()
        rc = proc.wait()
        stop.set()
        sampler.join()
    if rc:
        raise SystemExit(f"{' '.join(cmd)} exited {rc}; its output is in {log}")
    manifest = json.loads((ROOT / "finetune" / "adapters" / name / "manifest.json").read_text())
    memory = manifest["memory"]
    return {"dtype": dtype, "micro_batch": memory["micro_batch"], "checkpointing": memory["checkpointing"],
            "steps": manifest["steps"]["done"], "estimate": memory["estimate"], "printed": estimate,
            "peak": memory["peak_rss_bytes"], "wall": time.monotonic() - start,
            "between": troughs(samples, train_start or start)}


def troughs(samples: list[tuple[float, int]], start: float, parts: int = 10) -> list[int]:
    """The lowest resident set in each tenth of the time from `start` to the last sample."""
    late = [(t, r) for t, r in samples if t >= start]
    if len(late) < parts:
        return []
    span = (late[-1][0] - start) / parts
    return [min((r for t, r in late if start + i * span <= t < start + (i + 1) * span), default=0)
            for i in range(parts)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="resume-feedback")
    ap.add_argument("--dtypes", default="bfloat16,float32", help="comma-separated --dtype values, one run each")
    ap.add_argument("--rows", type=int, help="train on the first ROWS lines of train.jsonl only")
    ap.add_argument("--longest", type=int, help="train on the LONGEST longest lines of train.jsonl only")
    ap.add_argument("--logs", type=Path, default=ROOT / "reports" / "bench-finetune-memory",
                    help="each run's output goes to LOGS/DTYPE.log")
    ap.add_argument("--label", default="", help="a prefix for the adapters' names and the logs (runs side by side)")
    ap.add_argument("extra", nargs="*", help="more `evals finetune` options, after --")
    opts = ap.parse_args()
    opts.logs.mkdir(parents=True, exist_ok=True)
    print(f"{psutil.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"{opts.task}{f', first {opts.rows} rows' if opts.rows else ''}"
          f"{f', longest {opts.longest} rows' if opts.longest else ''}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        task_dir = task_folder(opts.task, opts.rows, opts.longest, Path(tmp))
        results = [measure(task_dir, d, opts.extra, opts.logs / f"{opts.label}{d}.log", opts.label)
                   for d in opts.dtypes.split(",")]
    gb = 1e9
    print(f"{'dtype':9} {'settings':>18} {'steps':>5} {'estimate':>9} {'peak':>8} {'peak/est':>8} {'wall':>7}  "
          "lowest resident set per tenth of training")
    for r in results:
        how = f"micro {r['micro_batch']}{', ckpt' if r['checkpointing'] else ''}"
        print(f"{r['dtype']:9} {how:>18} {r['steps']:>5} {r['estimate'] / gb:8.2f}G {r['peak'] / gb:7.2f}G "
              f"{r['peak'] / r['estimate']:8.2f} {r['wall'] / 60:6.1f}m  "
              + " ".join(f"{b / gb:.1f}" for b in r["between"]))


if __name__ == "__main__":
    main()
