"""I1 zero-shot inference from the cache: organ embeddings (vision encoder + organ pooling + projection) per volume,
volumes/s, candidate vs the fp32 eager explicit-attention baseline, same process, same weights, same inputs.
On a GPU the candidate uses bf16 autocast (and torch.compile); inputs come through the cached loader path
(int16 HU on the host, windowed on the device).

    python bench/i1_inference.py            # CPU: cpu-demo sizes; GPU: gpu-cnn and gpu-vit (256 x 256 x 128)
    python bench/i1_inference.py --smoke    # tiny sizes on the CPU, seconds, with the equality checks
"""
from __future__ import annotations
import argparse, sys, warnings
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import model_bench_setup, machine, timeit, table, check, synthetic_batch

from ctglip.config import get_config, override
from ctglip.core import get_device, set_seed
from ctglip.data.dataset import to_device
from ctglip.models.glip import build_model


def bench_one(name, cfg, B, dev, n, smoke):
    cuda = dev.type == 'cuda'
    set_seed(0); base = build_model(override(cfg, {'model.vit_attn': 'explicit'})).to(dev).eval()
    fast = build_model(cfg).to(dev).eval(); fast.load_state_dict(base.state_dict())
    b = synthetic_batch(cfg, B)
    hb = dict(image_hu=(b['image'] * 2000 - 1000).round().to(torch.int16), pair_map=b['pair_map'].to(torch.int16),
              aug=torch.tensor([[1., 0.]] * B), aug_seed=torch.zeros(B, dtype=torch.long), scan_idx=b['scan_idx'],
              organ_idx=b['organ_idx'], is_normal=b['is_normal'])
    if cuda: hb = {k: v.pin_memory() for k, v in hb.items()}
    P = int(b['pair_map'].max())
    amp = torch.autocast('cuda', dtype=torch.bfloat16) if cuda else nullcontext()
    enc = torch.compile(fast.encode_organs) if (cuda and not smoke) else fast.encode_organs
    @torch.no_grad()
    def run_fast():
        d = to_device(hb, dev)
        with amp: return enc(d['image'], d['pair_map'], P)
    @torch.no_grad()
    def run_base():
        d = to_device(hb, dev)
        return base.encode_organs(d['image'], d['pair_map'], P)
    ef, eb = run_fast().float(), run_base()
    cos = F.cosine_similarity(ef, eb, dim=-1).min().item()
    check(cos > (0.99 if cuda else 0.99999), f"{name}: organ embeddings fast vs fp32 explicit baseline, min cosine {cos:.6f}")
    tb, tf = timeit(run_base, n, 2, cuda), timeit(run_fast, n, 3 if cuda else 2, cuda)
    return dict(model=name, input=' x '.join(map(str, cfg.data.size)), batch=B, organs_per_volume=P // B,
                baseline_volumes_per_s=B / tb, fast_volumes_per_s=B / tf, speedup=tb / tf)


def main(argv=None):
    a, dev, cuda, cases = model_bench_setup(__doc__, argv, (16, 32))
    rows = [bench_one(name, cfg, B, dev, a.n or (3 if a.smoke else 10), a.smoke) for name, cfg, B in cases]
    print(f"\nI1 zero-shot organ embedding from cached int16 inputs (median; baseline = fp32 eager explicit attention): {machine()}")
    print(table(rows))
    return rows


if __name__ == '__main__': main()
