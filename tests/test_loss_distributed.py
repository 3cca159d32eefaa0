"Two gloo processes with unequal local batches give the single-process losses and gradients."
import os, socket, tempfile
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from ctglip.loss import AbnormalityTextLoss, ClipLoss, CTGLIPLoss, LogitScale, text_ids

SIZES = (3, 5)  # pairs per rank: unequal on purpose


def _batch():
    g = torch.Generator().manual_seed(0)
    P, K, E = sum(SIZES), 3, 8
    nrm = lambda *s: F.normalize(torch.randn(*s, generator=g), dim=-1)
    texts = ['a nodule.', 'normal liver.', 'normal liver.', 'a cyst.', 'a nodule.', 'normal liver.', 'normal spleen.', 'a mass.']
    return dict(img=nrm(P, E), txt=nrm(P, E), neg=nrm(P, K, E), prompts=nrm(4, E),
                tid=text_ids(texts), org=torch.tensor([0, 1, 1, 2, 0, 1, 3, 2]),
                nrm=torch.tensor(['normal' in t for t in texts]),
                neg_id=text_ids(['a mass.', 'a cyst.', 'x'] * P).view(P, K), neg_valid=torch.rand(P, K, generator=g) > .2)


def _losses(b, lo, hi, local=True):
    "Loss dict and gradients w.r.t. img, txt, neg rows [lo, hi) and the logit scale."
    ls = LogitScale()
    img, txt, neg = (b[k][lo:hi].clone().requires_grad_() for k in ('img', 'txt', 'neg'))
    sl = slice(lo, hi)
    out = {}
    for mode in ('mask', 'soft', 'none'):
        ls.zero_grad(); [t.grad.zero_() for t in (img, txt, neg) if t.grad is not None]
        l = CTGLIPLoss(false_negatives=mode, local=local)(img, txt, b['prompts'], b['org'][sl], b['tid'][sl], b['nrm'][sl], ls(),
                                                          neg, b['neg_id'][sl], b['neg_valid'][sl])['loss']
        l.backward()
        out[mode] = [l.detach(), img.grad.clone(), txt.grad.clone(), neg.grad.clone(), ls.log_scale.grad.clone()]
    clip = ClipLoss(local=local)(img, txt, ls(), b['tid'][sl])
    out['clip'] = [clip.detach()]
    return out


def _worker(rank, world, port, out_dir, local):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    try:
        lo = sum(SIZES[:rank]); res = _losses(_batch(), lo, lo + SIZES[rank], local)
        for k, v in res.items():
            t = v[0].clone(); dist.all_reduce(t); v[0] = t / world           # logged loss: mean over ranks
            if len(v) > 4: t = v[4].clone(); dist.all_reduce(t); v[4] = t / world  # DDP averages shared grads
        torch.save(res, Path(out_dir) / f'{rank}.pt')
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


@pytest.mark.parametrize('local', [True, False])
def test_two_process_equals_one(local):
    ref = _losses(_batch(), 0, sum(SIZES))
    with tempfile.TemporaryDirectory() as d:
        mp.spawn(_worker, args=(2, _free_port(), d, local), nprocs=2, join=True)
        got = [torch.load(Path(d) / f'{r}.pt') for r in range(2)]
    w = 2
    for k in ref:
        torch.testing.assert_close(got[0][k][0], ref[k][0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got[1][k][0], ref[k][0], rtol=1e-5, atol=1e-6)
        if k == 'clip': continue
        for i in (1, 2, 3):  # per-row gradients: rank r's rows are W x the global-mean gradient, as DDP expects
            cat = torch.cat([got[0][k][i], got[1][k][i]]) / w
            torch.testing.assert_close(cat, ref[k][i], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(got[0][k][4], ref[k][4], rtol=1e-4, atol=1e-6)
