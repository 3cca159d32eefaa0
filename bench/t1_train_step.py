"""T1 training step: one full step of the project's model (vision encoder + organ pooling + text + losses + AdamW),
samples/s, candidate vs the fp32 eager explicit-attention baseline, same process, same weights, same batch.
On a GPU the candidate uses bf16 autocast and torch.compile, and the table adds TFLOP/s and the share of the
measured bf16 matmul ceiling (and of 989 TFLOP/s, the H100 datasheet).

    python bench/t1_train_step.py            # CPU: the cpu-demo sizes; GPU: gpu-cnn and gpu-vit (256 x 256 x 128)
    python bench/t1_train_step.py --smoke    # tiny sizes on the CPU, seconds, with the equality checks
"""
from __future__ import annotations
import argparse, copy, sys, warnings
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import model_bench_setup, machine, timeit, table, check, synthetic_batch, matmul_ceiling, count_flops

from ctglip.config import get_config, override
from ctglip.core import get_device, set_seed
from ctglip.models.glip import build_model
from ctglip.runs import make_optimizer


def make_step(model, opt, batch, bf16:bool):
    amp = torch.autocast('cuda', dtype=torch.bfloat16) if bf16 else nullcontext()
    def step():
        with amp: out = model(batch)
        out['loss'].backward(); opt.step(); opt.zero_grad(set_to_none=True)
        return out
    return step


def bench_one(name, cfg, B, dev, n, smoke):
    cuda = dev.type == 'cuda'
    set_seed(0); base_cfg = override(cfg, {'model.vit_attn': 'explicit'})
    base = build_model(base_cfg).to(dev).train()
    fast = build_model(cfg).to(dev).train(); fast.load_state_dict(base.state_dict())
    batch = synthetic_batch(cfg, B, device=dev)
    with torch.no_grad():   # equality of the losses on the same weights and batch
        lb = base(batch)['loss'].float().item()
        with (torch.autocast('cuda', dtype=torch.bfloat16) if cuda else nullcontext()): lf = fast(batch)['loss'].float().item()
    tol = 3e-2 if cuda else 1e-4
    check(abs(lb - lf) <= tol * max(1, abs(lb)), f"{name}: loss fast {lf:.6f} vs fp32 explicit baseline {lb:.6f}")
    fwd = torch.compile(fast) if (cuda and not smoke) else fast
    sb = make_step(base, make_optimizer(base, cfg), batch, False)
    sf = make_step(fwd, make_optimizer(fast, cfg), batch, cuda)
    flops = count_flops(sb)
    tb = timeit(sb, n, 2, cuda); tf = timeit(sf, n, 3 if cuda else 2, cuda)
    row = dict(model=name, input=' x '.join(map(str, cfg.data.size)), batch=B, baseline_samples_per_s=B / tb,
               fast_samples_per_s=B / tf, speedup=tb / tf, gflop_per_sample=flops / B / 1e9, fast_tflop_per_s=flops / tf / 1e12)
    return row


def main(argv=None):
    a, dev, cuda, cases = model_bench_setup(__doc__, argv, (4, 8))
    ceiling = matmul_ceiling(dev)
    rows = []
    for name, cfg, B in cases:
        cfg = override(cfg, {'train.device': str(dev)})
        r = bench_one(name, cfg, B, dev, a.n or (3 if a.smoke else 10), a.smoke)
        r['share_of_measured_matmul_ceiling'] = r['fast_tflop_per_s'] / ceiling
        if cuda: r['share_of_989'] = r['fast_tflop_per_s'] / 989
        rows.append(r)
    kind = 'bf16 GEMM 8192^3' if cuda else 'fp32 GEMM 1024^3'
    print(f"\nT1 training step (median of timed steps; baseline = fp32 eager explicit attention): {machine()}")
    print(f"measured matmul ceiling ({kind}): {ceiling:.3g} TFLOP/s")
    print(table(rows))
    return rows


if __name__ == '__main__': main()
