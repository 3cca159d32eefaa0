"""R1 organ readout: the cost of each piece of `OrganReadout` in one CT-GLIP training step (encoder, readout, text,
losses, AdamW), beside the plain mean of the encoder map (the readout of earlier runs), same process, same batch.

    python bench/r1_readout.py            # CPU: the cpu-demo preset (64^3, batch 8); GPU: gpu-cnn (256 x 256 x 128)
    python bench/r1_readout.py --smoke    # tiny sizes on the CPU, seconds, with the equality check
"""
from __future__ import annotations
import sys
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import model_bench_setup, machine, timeit, table, check, synthetic_batch

from ctglip.config import override
from ctglip.core import set_seed
from ctglip.models.vision import pool_organs
from ctglip.models.glip import build_model
from ctglip.runs import make_optimizer

PLAIN = {'model.windows': '[]', 'model.readout_width': 0, 'model.readout_max': False, 'model.readout_hist': 0,
         'model.readout_volume': False, 'model.readout_norm': False}
# each row adds one piece to the one before
STEPS = [('mean of the encoder map (earlier runs)', {}), ('+ max', {'model.readout_max': True}),
         ('+ soft histogram (16)', {'model.readout_hist': 16}), ('+ log volume', {'model.readout_volume': True}),
         ('+ windows -150..250, 200..1500', {'model.windows': '[-150,250,200,1500]'}), ('+ batch norm (the cpu-demo readout)', {'model.readout_norm': True}),
         ('+ full-resolution path (8 channels, the GPU presets)', {'model.readout_width': 8})]


def step_fn(cfg, batch, cuda):
    set_seed(0); model = build_model(cfg).to(batch['image'].device).train(); opt = make_optimizer(model, cfg)
    amp = torch.autocast('cuda', dtype=torch.bfloat16) if cuda else nullcontext()
    def step():
        with amp: out = model(batch)
        out['loss'].backward(); opt.step(); opt.zero_grad(set_to_none=True)
    return model, step


def main(argv=None):
    a, dev, cuda, cases = model_bench_setup(__doc__, argv, (4, 4))
    name, cfg, B = cases[0]                                   # the CNN case of the preset
    cfg = override(cfg, {'train.device': str(dev)}); batch = synthetic_batch(cfg, B, device=dev)
    plain = override(cfg, PLAIN); model, _ = step_fn(plain, batch, cuda)
    with torch.no_grad():
        got = model.encode_organs(batch['image'], batch['pair_map'])
        ref = F.normalize(model.vision_proj(pool_organs(model.vision(batch['image']), batch['pair_map'])), dim=-1)
    check(torch.allclose(got, ref, atol=1e-5), "readout with every piece off == projected pool_organs of the encoder map (earlier runs)")
    rows, ov, base = [], dict(PLAIN), None
    for label, more in STEPS:
        ov.update(more); c = override(cfg, ov); m, step = step_fn(c, batch, cuda)
        t = timeit(step, a.n or (2 if a.smoke else 10), 1 if a.smoke else 2, cuda)
        base = base or t
        rows.append(dict(readout=label, readout_dim=m.readout.out_dim, step_s=t, samples_per_s=B / t, cost_vs_mean=t / base))
    print(f"\nR1 organ readout, one CT-GLIP training step ({name}, input {' x '.join(map(str, cfg.data.size))}, batch {B}; "
          f"median of timed steps): {machine()}")
    print(table(rows))
    return rows


if __name__ == '__main__': main()
