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


def synthetic_batch(cfg, B:int, pairs_per_scan:int=12, seed:int=0, device='cpu') -> dict:
    "A training batch in the DEVELOPERS.md format at `cfg.data.size`: random image, organs as blocks of a grid."
    import numpy as np
    from ctglip.anatomy import pair_organs
    g = torch.Generator().manual_seed(seed); rng = np.random.default_rng(seed)
    X, Y, Z = cfg.data.size; organs = pair_organs()
    nx = ny = 3; nz = max(1, -(-pairs_per_scan // (nx * ny)))
    cell = (torch.arange(X)[:, None, None] * nx // X) * ny * nz + (torch.arange(Y)[None, :, None] * ny // Y) * nz + (torch.arange(Z)[None, None] * nz // Z)
    pm, scan_idx, organ, text, normal, finds, negs, k = [], [], [], [], [], [], [], 0
    for b in range(B):
        ids = rng.choice(len(organs), size=pairs_per_scan, replace=False)
        lut = torch.zeros(nx * ny * nz, dtype=torch.long); lut[:pairs_per_scan] = torch.arange(k + 1, k + 1 + pairs_per_scan)
        pm.append(lut[cell]); k += pairs_per_scan
        for i in ids:
            o = organs[i]; ab = rng.random() < .3
            scan_idx.append(b); organ.append(o); normal.append(not ab); finds.append(['lesion'] if ab else [])
            text.append(f"a {rng.integers(5, 40)} mm lesion in the {o}." if ab else f"the {o} is normal.")
            negs.append([f"{w} of the {o}." for w in ('cyst', 'calcification', 'mass', 'atrophy', 'stone', 'enlargement', 'nodule', 'effusion')[:cfg.loss.n_dict_negatives]])
    return dict(image=torch.rand(B, 1, X, Y, Z, generator=g).to(device), pair_map=torch.stack(pm).to(device),
                scan_idx=torch.tensor(scan_idx, device=device), organ=organ,
                organ_idx=torch.tensor([organs.index(o) for o in organ], device=device), text=text,
                is_normal=torch.tensor(normal, device=device), findings=finds, neg_text=negs,
                report=[' '.join(t for t, s in zip(text, scan_idx) if s == b) for b in range(B)], scan_id=[f's{b}' for b in range(B)])


def matmul_ceiling(device, dtype=None, n:int|None=None) -> float:
    "Measured TFLOP/s of one large square matmul (bf16 8192^3 on a GPU, fp32 1024^3 on the CPU)."
    cuda = torch.device(device).type == 'cuda'
    dtype = dtype or (torch.bfloat16 if cuda else torch.float32); n = n or (8192 if cuda else 1024)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    t = timeit(lambda: a @ b, n=10, warmup=3, cuda=cuda)
    return 2 * n**3 / t / 1e12


def count_flops(fn) -> int:
    "FLOPs of one call of `fn` (matmuls, convolutions, attention) by torch's FlopCounterMode."
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc: fn()
    return fc.get_total_flops()


def model_bench_setup(doc:str, argv, gpu_batch:tuple):
    "Arguments, device and (name, config, batch) cases shared by the T1 and I1 model benchmarks."
    import argparse, warnings
    from ctglip.config import get_config
    from ctglip.core import get_device
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument('--smoke', action='store_true'); p.add_argument('--n', type=int, default=None)
    p.add_argument('--batch', type=int, default=None)
    p.add_argument('--threads', type=int, default=1, help='CPU threads (the shared 2-core VM is steadier with 1)')
    a = p.parse_args(argv); warnings.filterwarnings('ignore')
    dev = get_device('auto'); cuda = dev.type == 'cuda'
    if not cuda: torch.set_num_threads(a.threads)
    if a.smoke: cases = [('cnn', get_config('tiny'), 2), ('vit', get_config('tiny', ['model.vision=vit']), 2)]
    elif cuda: cases = [('cnn', get_config('gpu-cnn'), a.batch or gpu_batch[0]), ('vit', get_config('gpu-vit'), a.batch or gpu_batch[1])]
    else: cases = [('cnn', get_config('cpu-demo', ['text_model=tiny-random']), a.batch or 8),
                   ('vit', get_config('cpu-demo', ['text_model=tiny-random', 'model.vision=vit']), a.batch or 8)]
    return a, dev, cuda, cases
