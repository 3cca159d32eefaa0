"Shared helpers of the benchmark scripts: timing, tables, machine description."
from __future__ import annotations
import os, platform, statistics, time

import torch


def machine() -> str:
    "One line naming the device, the CPU count and the torch version."
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
    return f"{dev}, torch {torch.__version__}, {platform.machine()}"


def timeit(fn, n:int=10, warmup:int=2, cuda:bool=False, cpu_time:bool=False) -> float:
    "Median seconds of `n` calls of `fn` after `warmup` calls (CUDA events when `cuda`; this process's CPU time when `cpu_time`)."
    for _ in range(warmup): fn()
    ts = []
    for _ in range(n):
        if cuda:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record(); fn(); b.record(); torch.cuda.synchronize(); ts.append(a.elapsed_time(b) / 1e3)
        else:
            clock = time.process_time if cpu_time else time.perf_counter
            t = clock(); fn(); ts.append(clock() - t)
    return statistics.median(ts)


def table(rows:list[dict], title:str='') -> str:
    "A GitHub-markdown table of `rows` (dicts with the same keys), floats with 4 significant digits."
    if not rows: return ''
    keys = list(rows[0])
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
    out = ([f"### {title}", ''] if title else []) + ['| ' + ' | '.join(keys) + ' |', '|' + '---|' * len(keys)]
    out += ['| ' + ' | '.join(fmt(r.get(k, '')) for k in keys) + ' |' for r in rows]
    return '\n'.join(out)


def check(ok:bool, what:str):
    "Raise when a fast path disagrees with its baseline."
    if not ok: raise SystemExit(f"EQUALITY CHECK FAILED: {what}")
    print(f"check ok: {what}")
