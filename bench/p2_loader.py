"""P2 cached loader: ctglip's loader (`ctglip.data.dataset.make_loader`: memory-mapped int16/uint8 cache, the one scan
transform, pair_map by one lookup per scan, pinned memory, prefetch, windowing on the device) vs a DataLoader over
compressed float32 .npz files (the peer recipe), samples/s, both in evaluation mode (same crops), baseline and candidate
in the same process; then the same loader with the preset's training augmentation against the training step rate of
the same preset (the rate the loader must feed; target >= 3x).

    python bench/p2_loader.py            # cpu-demo (6 mm, 64^3, batch 8) on 24 SynthCT demo cases, with its training step;
                                         # gpu-cnn sizes (1.5 mm, 256 x 256 x 128) from the embedded case, loader only
    python bench/p2_loader.py --smoke    # tiny preset on 8 SynthCT tiny cases, seconds, with the equality checks
"""
from __future__ import annotations
import argparse, contextlib, json, os, shutil, statistics, sys, tempfile, time, warnings
from dataclasses import replace
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, table, check

from ctglip.anatomy import group_of, group_label_ids, id2name
from ctglip.config import get_config
from ctglip.core import embedded_case, get_device, set_seed
from ctglip.data.cache import Cache, build_cache, write_manifest
from ctglip.data.dataset import prepare_data, CacheDataset, StepSampler, make_loader
from ctglip.data.layout import read_pairs
from ctglip.data.transform import crop_pad, crop_start, label_counts
from ctglip.synth.core import generate
from ctglip.models.glip import build_model
from ctglip.runs import make_optimizer


class NpzDataset(torch.utils.data.Dataset):
    "The baseline: one compressed float32 .npz per scan (windowed image + label map), loaded whole, cropped, one mask per pair."
    def __init__(self, ds:CacheDataset, folder:Path, copies_of:dict|None=None):
        self.ds, self.folder = ds, folder; lo, hi = ds.cfg.data.hu_window; copies_of = copies_of or {}
        for sid in ds.ids:
            if sid in copies_of: shutil.copyfile(folder/f"{copies_of[sid]}.npz", folder/f"{sid}.npz"); continue
            img, lab = ds.cache.arrays(sid, mmap=False)
            np.savez_compressed(folder/f"{sid}.npz", image=np.clip((img.astype(np.float32) - lo) / (hi - lo), 0, 1), labels=lab.astype(np.float32))
    def __len__(self): return len(self.ds)
    def __getitem__(self, item):
        i, _ = item; sid = self.ds.ids[i]; meta = self.ds.cache.scans[sid]; d = self.ds.cfg.data
        z = np.load(self.folder/f"{sid}.npz"); fg = np.asarray(meta['fg_box'], float)
        c = np.array(z['image'].shape) / 2 if d.crop == 'center' else (fg[:3] + fg[3:]) / 2
        st = crop_start(z['image'].shape, d.size, c)
        img, lab = crop_pad(z['image'], st, d.size, 0.0), crop_pad(z['labels'], st, d.size, 0.0)
        cin = np.zeros(256); cout = label_counts(lab.astype(np.uint8))     # the pairs whose organ is inside the crop
        for k, b in meta['boxes'].items(): cin[int(k)] = b[6]
        keep = self.ds.keep(sid, dict(label=lab.astype(np.uint8), kept=np.where(cin > 0, cout / np.maximum(cin, 1), 0).clip(0, 1)))
        pm = np.zeros(lab.shape, np.int64)
        for k, (_, ids) in enumerate(keep): pm[np.isin(lab, ids)] = k + 1
        return dict(image=img, pair_map=pm, n=len(keep))


def base_collate(samples):
    off, pms = 0, []
    for s in samples: pms.append(np.where(s['pair_map'] > 0, s['pair_map'] + off, 0)); off += s['n']
    return dict(image=torch.from_numpy(np.stack([s['image'] for s in samples]))[:, None], pair_map=torch.from_numpy(np.stack(pms)))


def stream_rate(loader, warm:int, windows:int, per:int) -> tuple:
    "(wall-clock, CPU-time of this process) samples/s, medians of `windows` consecutive windows of `per` batches after `warm` batches."
    it = iter(loader)
    for _ in range(warm): next(it)                                       # worker start, prefetch buffers
    wall, cpu = [], []
    for _ in range(windows):
        t, c = time.perf_counter(), time.process_time(); n = 0
        for _ in range(per): b = next(it); b['image'].sum().item(); n += b['image'].shape[0]
        wall.append(n / (time.perf_counter() - t)); cpu.append(n / max(time.process_time() - c, 1e-9))
    return statistics.median(wall), statistics.median(cpu)


def train_rate(cfg, ds:CacheDataset, dev, warmup:int, n:int) -> tuple:
    "(wall-clock, CPU-time) samples/s of the preset's training step, medians of `n` steps after `warmup`, each on its own loader batch."
    set_seed(cfg.train.seed); model = build_model(cfg).to(dev).train(); opt = make_optimizer(model, cfg)
    batches = list(make_loader(ds, steps=warmup + n, device=dev))        # loaded first: the step alone is timed
    amp = torch.autocast('cuda', dtype=torch.bfloat16) if dev.type == 'cuda' and cfg.train.bf16 else contextlib.nullcontext()
    wall, cpu = [], []
    for k, b in enumerate(batches):                                      # forward, backward, grad clip, AdamW (no compile)
        t, c = time.perf_counter(), time.process_time()
        with amp: out = model(b)
        out['loss'].backward()
        if cfg.train.grad_clip: torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        opt.step(); opt.zero_grad(set_to_none=True)
        if dev.type == 'cuda': torch.cuda.synchronize()
        if k >= warmup: wall.append(time.perf_counter() - t); cpu.append(time.process_time() - c)
    B = cfg.train.batch_size
    return B / statistics.median(wall), B / statistics.median(cpu)


def synth_case(d:Path, cfg, n:int, size:str):
    "SynthCT cases through `prepare_data`: (cache, pairs, reports)."
    paths = prepare_data(generate(d/'synth', n, seed=0, size=size, workers=1), cfg, work=d/'work', workers=1)
    return paths.cache, read_pairs(paths.pairs), paths.scans


def embedded_copies(d:Path, cfg, n:int):
    "`n` copies of the embedded case cached at `cfg.data.spacing`, every organ group a normal pair: (cache, pairs, reports)."
    c = embedded_case(); out = d/'cache'
    build_cache([dict(scan_id='e00', split='train', image=str(c['image']), mask=str(c['mask']))], out, cfg.data.spacing, cfg.data.hu_window, workers=1)
    for i in range(1, n):
        sid = f'e{i:02d}'; shutil.copytree(out/'scans/e00', out/'scans'/sid)
        m = out/'scans'/sid/'meta.json'; j = json.loads(m.read_text()); j['scan_id'] = sid; m.write_text(json.dumps(j))
    write_manifest(out)
    groups = sorted({group_of(id2name()[int(k)]) for k in Cache(out).scans['e00']['boxes']})
    pairs = [dict(scan_id=f'e{i:02d}', organ=g, label_ids=group_label_ids(g), text=f'the {g} is normal.', is_normal=True, findings=[], split='train')
             for i in range(n) for g in groups]
    return out, pairs, {f'e{i:02d}': 'no acute abnormality.' for i in range(n)}


def with_workers(cfg, w:int): return replace(cfg, train=replace(cfg.train, num_workers=w))


def eval_rows(c:dict, cache, pairs, reports, base_ds:NpzDataset, dev, core:dict) -> list:
    "Evaluation mode, ctglip vs the float32 .npz baseline on the same batches (all splits), with the equality checks; `core`: CPU ms per sample at 0 workers."
    cfg = c['cfg']; B, cuda, rows = cfg.train.batch_size, dev.type == 'cuda', []
    for w in c['workers']:
        warm = 2 + w; steps = warm + 3 * c['per']
        ds = CacheDataset(cache, pairs, with_workers(cfg, w), split=None, train=False, reports=reports)
        fast = lambda: make_loader(ds, steps=steps, device=dev, shuffle=True)       # shuffled: wraps around for enough batches
        smp = StepSampler(len(ds), B, steps, cfg.train.seed, shuffle=True)          # the same batches for the baseline
        base = torch.utils.data.DataLoader(base_ds, batch_sampler=smp, num_workers=w, collate_fn=base_collate, pin_memory=cuda)
        if w == 0:
            fb, bb = next(iter(fast())), next(iter(base))
            check(torch.allclose(fb['image'].cpu(), bb['image'], atol=1e-6, rtol=0), f"{c['name']}: cached loader image == float32 .npz image (1e-6)")
            check(bool(torch.equal(fb['pair_map'].cpu(), bb['pair_map']) and fb['pair_map'].max() > 0), f"{c['name']}: cached loader pair_map == one-mask-per-pair pair_map")
        (rb, cb), (rf, cf) = stream_rate(base, warm, 3, c['per']), stream_rate(fast(), warm, 3, c['per'])
        if w == 0: core.update(npz_eval_ms=1e3 / cb, ctglip_eval_ms=1e3 / cf, eval_speedup=cf / cb)
        rows.append(dict(case=c['name'], workers=w, crop=' x '.join(map(str, cfg.data.size)), batch=B,
                         npz_float32_samples_per_s=rb, ctglip_samples_per_s=rf, speedup=rf / rb))
    return rows


def aug_checks(c:dict, cache, pairs, reports, dev):
    "Augmented batches: seeded per sample (a worker gives the main process's batch), and not the evaluation crop."
    cfg = c['cfg']; first = lambda w, train: next(iter(make_loader(
        CacheDataset(cache, pairs, with_workers(cfg, w), split='train', train=train, reports=reports), steps=1, device=dev, shuffle=True)))
    b0, b1, ev = first(0, True), first(1, True), first(0, False)
    check(torch.equal(b0['image'], b1['image']) and torch.equal(b0['pair_map'], b1['pair_map']) and b0['text'] == b1['text'],
          f"{c['name']}: augmented batches are the same in the main process and in a worker (seeded per sample)")
    check(b0['scan_id'] == ev['scan_id'] and not torch.equal(b0['image'], ev['image']), f"{c['name']}: augmented batch differs from the evaluation crop of the same scans")


def aug_rows(c:dict, cache, pairs, reports, dev, core:dict) -> list:
    "Training mode (the preset's augmentation, training split): loader samples/s per worker count, against the training step rate; `core` as in `eval_rows`."
    cfg = c['cfg']; rows, tr = [], None
    for w in c['workers']:
        warm = 2 + w; ds = CacheDataset(cache, pairs, with_workers(cfg, w), split='train', train=True, reports=reports)
        if c['train'] and tr is None: tr, tc = train_rate(cfg, ds, dev, *c['steps'])
        rl, cl = stream_rate(make_loader(ds, steps=warm + 3 * c['per'], device=dev), warm, 3, c['per'])
        if w == 0: core.update(ctglip_aug_ms=1e3 / cl, **(dict(train_step_ms=1e3 / tc, aug_loader_over_train=cl / tc) if tr else {}))
        row = dict(case=c['name'], workers=w, crop=' x '.join(map(str, cfg.data.size)), batch=cfg.train.batch_size, aug_loader_samples_per_s=rl)
        if tr: row.update(train_samples_per_s=tr, loader_over_train=rl / tr)
        rows.append(row)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--smoke', action='store_true')
    p.add_argument('--case', default=None, choices=['cpu-demo', 'gpu-cnn'], help='only this case (default: both)')
    a = p.parse_args(argv); warnings.filterwarnings('ignore'); torch.set_num_threads(1)
    dev = get_device('auto'); cuda = dev.type == 'cuda'
    # per: batches per timed window (even, so that two workers' batches, which arrive in pairs, fill whole windows)
    if a.smoke: cases = [dict(name='tiny', cfg=get_config('tiny', ['model.text_model=tiny-random']), data=('synth', 8, 'tiny'), train=True,
                              per=2, workers=[0, 1], steps=(2, 5))]
    else: cases = [dict(name='cpu-demo', cfg=get_config('cpu-demo'), data=('synth', 24, 'demo'), train=True, per=6, workers=[0, 1, 2], steps=(2, 7)),
                   dict(name='gpu-cnn', cfg=get_config('gpu-cnn', ['train.batch_size=4']), data=('embedded', 16), train=cuda, per=2,
                        workers=[0, 1, 2], steps=(3, 10))]
    cases = [c for c in cases if a.case in (None, c['name'])]
    evals, augs, cores, notes = [], [], [], []
    for c in cases:
        with tempfile.TemporaryDirectory() as d:
            d, n = Path(d), c['data'][1]; t0 = time.perf_counter()
            if c['data'][0] == 'synth': (cache, pairs, reports), copies = synth_case(d, c['cfg'], n, c['data'][2]), {}
            else: (cache, pairs, reports), copies = embedded_copies(d, c['cfg'], n), {f'e{i:02d}': 'e00' for i in range(1, n)}
            (d/'npz').mkdir()
            base_ds = NpzDataset(CacheDataset(cache, pairs, c['cfg'], split=None, train=False, reports=reports), d/'npz', copies)
            notes.append(f"{c['name']}: {n} scans ({c['data'][0]}), data ready in {time.perf_counter() - t0:.0f} s")
            core = dict(case=c['name'], crop=' x '.join(map(str, c['cfg'].data.size)), batch=c['cfg'].train.batch_size)
            evals += eval_rows(c, cache, pairs, reports, base_ds, dev, core)
            aug_checks(c, cache, pairs, reports, dev)
            augs += aug_rows(c, cache, pairs, reports, dev, core); cores.append(core)
            if not c['train']: notes.append(f"{c['name']}: training rate not measured (no GPU in this run): the loader alone")
    where = f"to {dev}" + ('' if cuda else ' (to_device windowing and the long pair_map on the CPU)')
    print(f"\n{machine()}\n")
    print(table(evals, f"P2 loader {where}, evaluation mode (no augmentation, same crops), median of 3 windows after warm-up"))
    print(); print(table(augs, f"P2 loader with training augmentation vs the preset's training step {where} (target loader_over_train >= 3)"))
    if not cuda: print(); print(table(cores, "P2 per core: CPU time of this process per sample at 0 workers (ms, medians; robust to other jobs on the machine)"))
    for c in cases:
        if c['train']: print(f"training step of {c['name']}: {c['cfg'].train.model} {c['cfg'].model.vision}, text {c['cfg'].model.text_model}, "
                             f"forward + backward + grad clip + AdamW, median of {c['steps'][1]} steps after {c['steps'][0]} warm-up steps")
    for n in notes: print(n)
    return evals, augs, cores


if __name__ == '__main__': main()
