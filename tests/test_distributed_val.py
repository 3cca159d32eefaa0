"Validation spread over two gloo ranks (each embeds its share of the scans, rank 0 gathers) equals single-process validation exactly."
import os, pickle, socket, tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

os.environ.setdefault('HF_HUB_OFFLINE', '1')
from ctglip.config import get_config
from ctglip.data.dataset import CacheDataset, prepare_data
from ctglip.synth.core import generate
from ctglip.models.glip import build_model
from ctglip.train import default_val_hook, spread_embed

CFG = get_config('tiny')


def _setup(p):
    "The validation dataset (all scans of the toy set, evaluation crops) and the model, the same in every process."
    torch.set_num_threads(1)
    vds = CacheDataset(p.cache, p.pairs, CFG, split=None, train=False, reports=p.scans)
    torch.manual_seed(0); return build_model(CFG).eval(), vds


def _validate(model, vds, bs, rank=0, world=1):
    with torch.no_grad():
        emb = spread_embed(model, vds, bs, rank, world)
        return None if emb is None else (emb, default_val_hook(model, emb, CFG, 0))


def _worker(rank, world, port, paths, work, bs):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    try:
        model, vds = _setup(paths); res = _validate(model, vds, bs, rank, world)
        assert (res is None) == (rank != 0)
        if rank == 0: (Path(work)/f'val{bs}.pkl').write_bytes(pickle.dumps(res))
    finally: dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


@pytest.fixture(scope='module')
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp('val')
    generate(d/'ds', 7, seed=0, size='demo', workers=1)
    return d, prepare_data(d/'ds', CFG, work=d/'work', workers=1)


@pytest.mark.parametrize('bs', [3, 4])   # 3 batches (rank 0 gets two), 2 batches (one each)
def test_two_ranks_equal_one_process(work, bs):
    work, paths = work; model, vds = _setup(paths)
    ref_emb, ref = _validate(model, vds, bs)
    assert len(ref_emb['scans']) == len(vds) == 7 and ref['val_n_scans'] == 7
    mp.spawn(_worker, args=(2, _free_port(), paths, str(work), bs), nprocs=2, join=True)
    emb, got = pickle.loads((work/f'val{bs}.pkl').read_bytes())
    assert got == ref                                   # the same numbers, exactly
    assert np.array_equal(emb['img'], ref_emb['img'])
    pd.testing.assert_frame_equal(emb['units'], ref_emb['units']); pd.testing.assert_frame_equal(emb['scans'], ref_emb['scans'])
