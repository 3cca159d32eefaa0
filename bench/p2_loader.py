"""P2 cached loader: ctglip's loader (memory-mapped int16/uint8 cache, crops, pair_map by lookup, pinned memory,
prefetch, windowing on the device) vs a DataLoader over float32 .npz files (the peer recipe), samples/s,
baseline and candidate in the same process, same scans, same crops.

    python bench/p2_loader.py            # the embedded case at 1.5 mm (244 x 202 x 224), 128^3 crops
    python bench/p2_loader.py --smoke    # toy scans, seconds, with the equality checks
"""
from __future__ import annotations
import argparse, shutil, sys, tempfile, time, warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, table, check

from ctglip.config import get_config
from ctglip.core import embedded_case, get_device
from ctglip.data.cache import (Cache, CacheDataset, build_cache, collate, find_scans, make_loader, make_toy_dataset,
                               read_pairs, write_pairs, crop_pad, crop_start)


class NpzDataset(torch.utils.data.Dataset):
    "The baseline: one compressed float32 .npz per scan (windowed image + label map), loaded whole, then cropped."
    def __init__(self, ds:CacheDataset, folder:Path):
        self.ds, self.folder = ds, folder
        lo, hi = ds.cfg.data.hu_window
        for sid in ds.ids:
            img, lab = ds.cache.arrays(sid, mmap=False)
            np.savez_compressed(folder/f"{sid}.npz", image=np.clip((img.astype(np.float32) - lo) / (hi - lo), 0, 1),
                                labels=lab.astype(np.float32))
    def __len__(self): return len(self.ds)
    def __getitem__(self, item):
        i, pos = item; s = self.ds.load(i, pos)                       # same crop, pairs and negatives as the candidate
        z = np.load(self.folder/f"{self.ds.ids[i]}.npz")
        meta = self.ds.cache.scans[self.ds.ids[i]]; fg = meta['fg_box']
        st = crop_start(z['image'].shape, self.ds.cfg.data.size, [(a + b) / 2 for a, b in zip(fg[:3], fg[3:])])
        img, lab = crop_pad(z['image'], st, self.ds.cfg.data.size, 0.0), crop_pad(z['labels'], st, self.ds.cfg.data.size, 0.0)
        pm = np.zeros(lab.shape, np.int64)                              # one mask per pair
        for k, ids in enumerate(s['label_ids']): pm[np.isin(lab, ids)] = k + 1
        return dict(image=img, pair_map=pm, n=len(s['label_ids']))


def base_collate(samples):
    off, pms = 0, []
    for s in samples: pms.append(np.where(s['pair_map'] > 0, s['pair_map'] + off, 0)); off += s['n']
    return dict(image=torch.from_numpy(np.stack([s['image'] for s in samples]))[:, None], pair_map=torch.from_numpy(np.stack(pms)))


def rate(loader, n_batches, B, dev):
    it = iter(loader); next(it)                                          # warm-up (worker start)
    t = time.perf_counter(); k = 0
    for b in it:
        b['image'].to(dev).sum().item(); k += 1
        if k == n_batches: break
    return k * B / (time.perf_counter() - t)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--smoke', action='store_true')
    p.add_argument('--batches', type=int, default=None)
    a = p.parse_args(argv); warnings.filterwarnings('ignore'); torch.set_num_threads(1)
    dev = get_device('auto'); rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        if a.smoke:
            ds_dir = make_toy_dataset(d/'toy', n=8); cfg = get_config('tiny', ['data.crop_jitter=0'])
            build_cache(find_scans(ds_dir), d/'cache', cfg.data.spacing, cfg.data.hu_window, workers=1)
            pairs = read_pairs(ds_dir/'pairs.jsonl'); nb = a.batches or 4
        else:   # 16 copies of the embedded case at 1.5 mm, 128^3 crops
            cfg = get_config('tiny', ['data.size=128,128,128', 'data.spacing=1.5,1.5,1.5', 'data.crop_jitter=0', 'batch_size=4'])
            c = embedded_case(); scan = dict(scan_id='e00', split='train', image=str(c['image']), mask=str(c['mask']))
            build_cache([scan], d/'cache', cfg.data.spacing, cfg.data.hu_window, workers=1)
            for i in range(1, 16): shutil.copytree(d/'cache/scans/e00', d/f'cache/scans/e{i:02d}')
            from ctglip.data.cache import write_manifest; import json
            for i in range(16):
                m = d/f'cache/scans/e{i:02d}/meta.json'; j = json.loads(m.read_text()); j['scan_id'] = f'e{i:02d}'; m.write_text(json.dumps(j))
            write_manifest(d/'cache')
            from ctglip.anatomy import group_of, group_label_ids, id2name
            meta = Cache(d/'cache').scans['e00']
            groups = sorted({group_of(id2name()[int(k)]) for k in meta['boxes']})
            pairs = {f'e{i:02d}': [dict(scan_id=f'e{i:02d}', organ=g, label_ids=group_label_ids(g), text=f'{g} normal', is_normal=True,
                                        findings=[], split='train') for g in groups] for i in range(16)}
            nb = a.batches or 8
        B = cfg.train.batch_size
        for workers in ([0, 1] if a.smoke else [0, 1, 2]):
            c2 = replace(cfg, train=replace(cfg.train, num_workers=workers))
            ds = CacheDataset(d/'cache', pairs, c2, split='train', train=False)
            (d/'npz').mkdir(exist_ok=True); base_ds = NpzDataset(ds, d/'npz') if workers == 0 else base_ds
            steps = nb + 1
            fast = make_loader(ds, steps=steps, device=dev)
            from ctglip.data.cache import StepSampler
            smp = StepSampler(len(ds), B, steps, cfg.train.seed, shuffle=False)
            kw = dict(num_workers=workers, collate_fn=base_collate, pin_memory=dev.type == 'cuda')
            base = torch.utils.data.DataLoader(base_ds, batch_sampler=smp, **kw)
            if workers == 0:   # equality: same image and pair_map on the device
                fb, bb = next(iter(fast)), next(iter(base))
                check(torch.allclose(fb['image'].cpu(), bb['image'], atol=1e-6), 'cached loader image == float32 .npz image')
                check(torch.equal(fb['pair_map'].cpu(), bb['pair_map']), 'cached loader pair_map == one-mask-per-pair pair_map')
            rb, rf = rate(base, nb, B, dev), rate(make_loader(ds, steps=steps, device=dev), nb, B, dev)
            rows.append(dict(workers=workers, crop=' x '.join(map(str, cfg.data.size)), batch=B, npz_float32_samples_per_s=rb,
                             ctglip_samples_per_s=rf, speedup=rf / rb))
    print(f"\nP2 loader to {dev} (wall clock, {nb} batches after one warm-up batch): {machine()}")
    print(table(rows))
    return rows


if __name__ == '__main__': main()
