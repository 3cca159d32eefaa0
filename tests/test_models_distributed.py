"CT-GLIP and CLIP on two gloo ranks (one scan each, unequal pair counts) equal one process on both scans."
import os, socket, tempfile
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

os.environ.setdefault('HF_HUB_OFFLINE', '1')
from ctglip.models.glip import CTGLIP, CLIPBaseline

TEXTS = ['liver shows no significant abnormalities.', 'a 6 mm nodule in the right upper lobe.', 'a simple cyst in the left kidney.',
         'liver shows no significant abnormalities.', 'spleen shows no significant abnormalities.']


def _batch(scans=(0, 1)):
    g = torch.Generator().manual_seed(0)
    pm = torch.zeros(2, 32, 32, 32, dtype=torch.long)
    pm[0, 2:14, 2:14, 2:14], pm[0, 18:30, 4:12, 4:28], pm[0, 20:24, 20:24, 2:6] = 1, 2, 3
    pm[1, 4:16, 4:16, 4:16], pm[1, 20:28, 20:28, 20:28] = 4, 5
    image = torch.rand(2, 1, 32, 32, 32, generator=g)
    owner = [0, 0, 0, 1, 1]
    b = dict(image=image, pair_map=pm, organ=['liver', 'lung', 'kidney_left', 'liver', 'spleen'], text=TEXTS,
             is_normal=torch.tensor([True, False, False, True, True]),
             neg_text=[['hepatic steatosis.', 'liver cyst.'], ['pleural effusion.', 'emphysema.'], ['renal stone.'],
                       ['hepatic steatosis.', 'liver cyst.'], ['splenomegaly.', 'splenic cyst.']],
             report=['liver normal. nodule. left renal cyst.', 'liver and spleen normal.'])
    if tuple(scans) == (0, 1): return b
    s = scans[0]; keep = [i for i, o in enumerate(owner) if o == s]
    pm1 = pm[s:s + 1].clone(); pm1[pm1 > 0] -= keep[0]     # renumber this scan's pairs from 1
    return dict(image=image[s:s + 1], pair_map=pm1, organ=[b['organ'][i] for i in keep], text=[TEXTS[i] for i in keep],
                is_normal=b['is_normal'][keep], neg_text=[b['neg_text'][i] for i in keep], report=[b['report'][s]])


def _run(cls, batch, world=1):
    torch.manual_seed(0)
    m = cls(vision_kw=dict(cnn_widths=(4, 8)), text='tiny-random', embed_dim=16)
    out = m(batch); out['loss'].backward()
    grads = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    loss = out['loss'].detach().clone()
    if world > 1:
        dist.all_reduce(loss); loss /= world
        for g in grads.values(): dist.all_reduce(g); g /= world          # what DDP does
    return loss, grads


def _worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    try:
        res = {cls.__name__: _run(cls, _batch((rank,)), world) for cls in (CTGLIP, CLIPBaseline)}
        torch.save(res, Path(out_dir) / f'{rank}.pt')
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def test_two_ranks_equal_one_process():
    ref = {cls.__name__: _run(cls, _batch()) for cls in (CTGLIP, CLIPBaseline)}
    with tempfile.TemporaryDirectory() as d:
        mp.spawn(_worker, args=(2, _free_port(), d), nprocs=2, join=True)
        got = torch.load(Path(d) / '0.pt')
    for name, (loss, grads) in ref.items():
        torch.testing.assert_close(got[name][0], loss, rtol=1e-5, atol=1e-6)
        assert set(got[name][1]) == set(grads)
        for k in grads: torch.testing.assert_close(got[name][1][k], grads[k], rtol=1e-4, atol=1e-4 * float(grads[k].abs().max()) + 1e-7)  # float summation order differs
