"""P2a training augmentation: ctglip's scan transform (random field of view, placement, zoom, rotation, tilt,
slice thickness, contrast phase, HU jitter, noise, exact `kept`; image and label map together) vs MONAI `Affined`
doing only the geometry (image bilinear, labels nearest) with the same affine, milliseconds per sample in one
thread (CPU time of this process, median), baseline and candidate in the same process on the same scan.

    python bench/p2_aug.py            # the embedded case at 6 mm (cpu-demo, 64^3) and at 1.5 mm (gpu-cnn, 256 x 256 x 128)
    python bench/p2_aug.py --smoke    # the embedded case at 6 mm, tiny preset (32^3), with the equality checks
"""
from __future__ import annotations
import argparse, itertools, sys, warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, table, check, timeit

from ctglip.config import get_config, override
from ctglip.core import embedded_case
from ctglip.data.volume import load_volume, load_mask, resample_pair
from ctglip.data.transform import scan_transform, crop_pad, crop_start

QUIET = ['aug_contrast_p=0', 'aug_noise_hu=0', 'aug_hu_scale=0', 'aug_hu_shift=0', 'aug_thickness_p=0']


def case_at(spacing:float) -> dict:
    "The embedded CT and its organ mask resampled to `spacing` mm, as a cached sample (int16 HU, uint8 ids, body box)."
    c = embedded_case(); ct = load_volume(c['image']); ct, seg = resample_pair(ct, load_mask(c['mask'], like=ct), spacing)
    hu, lab = np.clip(np.rint(ct.array), -1000, 1000).astype(np.int16), seg.array.astype(np.uint8)
    body = np.argwhere(hu > -500)
    return dict(image=hu, label=lab, fg_box=[*body.min(0).tolist(), *(body.max(0) + 1).tolist()])


def monai_affine(s:dict, p:dict, size):
    "The baseline: MONAI `Affined` on the drawn field of view with the drawn affine (output voxel -> input voxel)."
    from monai.transforms import Affined
    A, f = np.array(p['affine']), np.array(p['fov']); lo, hi = f[:3], f[3:]
    sl = tuple(slice(a, b) for a, b in zip(lo, hi)); I, O = np.array(hi - lo), np.array(size)
    M = np.eye(4); M[:3, :3] = A[:, :3]; M[:3, 3] = A[:, :3] @ ((O - 1) / 2) + A[:, 3] - lo - (I - 1) / 2  # MONAI grids are centred
    t = Affined(keys=['image', 'label'], affine=torch.tensor(M), spatial_size=tuple(int(o) for o in O),
                mode=('bilinear', 'nearest'), padding_mode=('border', 'zeros'))
    d = t(dict(image=torch.from_numpy(s['image'][sl].astype(np.float32))[None], label=torch.from_numpy(s['label'][sl].astype(np.float32))[None]))
    return np.asarray(d['image'][0]), np.asarray(d['label'][0])


def interior(p:dict, size) -> np.ndarray:
    "Output voxels that read the field of view at least one voxel away from its border (the baseline reads past it)."
    A, f = np.array(p['affine']), np.array(p['fov']); q = A[:, :3] @ np.indices(size).reshape(3, -1) + A[:, 3:]
    return np.all((q >= f[:3, None] + .5) & (q <= f[3:, None] - 1.5), 0).reshape(size)


def checks(name:str, cfg, s:dict):
    "Same result as the baseline on the same inputs."
    ev = scan_transform(cfg, False)(s); fg = s['fg_box']
    st = crop_start(s['image'].shape, cfg.data.size, [(a + b) / 2 for a, b in zip(fg[:3], fg[3:])])
    check(np.array_equal(ev['image'], crop_pad(s['image'], st, cfg.data.size, -1000)) and np.array_equal(ev['label'], crop_pad(s['label'], st, cfg.data.size)),
          f"{name}: evaluation = plain centred crop")
    tr = scan_transform(cfg, True); a, b = tr(dict(s, rng=np.random.default_rng(5))), tr(dict(s, rng=np.random.default_rng(5)))
    check(np.array_equal(a['image'], b['image']) and np.array_equal(a['label'], b['label']) and a['params'] == b['params'], f"{name}: same seed, same sample")
    check(set(np.unique(a['label']).tolist()) <= set(np.unique(s['label']).tolist()), f"{name}: no new label ids")
    q = scan_transform(override(cfg, QUIET + ['aug_tilt=0']), True); worst, agree = 0., 1.
    for i in range(3):
        o = q(dict(s, rng=np.random.default_rng(i))); mi, ml = monai_affine(s, o['params'], cfg.data.size); m = interior(o['params'], cfg.data.size)
        worst, agree = max(worst, float(np.abs(np.rint(mi) - o['image'])[m].max())), min(agree, float((ml[m] == o['label'][m]).mean()))
    check(worst <= 1 and agree >= 0.999, f"{name}, no tilt: image = MONAI Affined within {worst:.0f} HU, labels agree at {agree:.4f} of the interior voxels")
    q = scan_transform(override(cfg, QUIET + ['aug_tilt=3']), True); d, agree = [], 1.
    for i in range(3):                                               # z shifts of the shear are rounded to 1/4 voxel
        o = q(dict(s, rng=np.random.default_rng(i))); mi, ml = monai_affine(s, o['params'], cfg.data.size); m = interior(o['params'], cfg.data.size)
        d.append(np.abs(np.rint(mi) - o['image'])[m]); agree = min(agree, float((ml[m] == o['label'][m]).mean()))
    d = np.concatenate(d)
    check(d.mean() <= 3 and np.percentile(d, 99) <= 40 and agree >= 0.98,
          f"{name}, tilt 3 deg: image = MONAI Affined to {d.mean():.1f} HU mean, {np.percentile(d, 99):.0f} HU 99th percentile; labels agree at {agree:.4f}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--smoke', action='store_true'); p.add_argument('--n', type=int, default=20)
    a = p.parse_args(argv); warnings.filterwarnings('ignore'); torch.set_num_threads(1)
    cases = [('tiny', 6.0)] if a.smoke else [('cpu-demo', 6.0), ('gpu-cnn', 1.5)]
    n = 3 if a.smoke else a.n; rows = []
    print(machine())
    for preset, sp in cases:
        cfg = get_config(preset); s = case_at(sp); checks(preset, cfg, s)
        seeds = itertools.count()
        def run(t): return lambda: t(dict(s, rng=np.random.default_rng(next(seeds))))
        ms = lambda f, k=n: 1e3 * timeit(f, n=k, warmup=2, cpu_time=True)
        tr, ev = scan_transform(cfg, True), scan_transform(cfg, False)
        o = tr(dict(s, rng=np.random.default_rng(0)))
        t_train, t_notilt = ms(run(tr)), ms(run(scan_transform(override(cfg, ['aug_tilt=0']), True)))
        t_eval = ms(lambda: ev(s))
        t_monai = ms(lambda: monai_affine(s, o['params'], cfg.data.size), max(3, n // 4))
        rows.append(dict(preset=preset, input=' x '.join(map(str, s['image'].shape)), output=' x '.join(map(str, cfg.data.size)),
                         monai_affined_ms=t_monai, ctglip_train_ms=t_train, ctglip_train_no_tilt_ms=t_notilt, ctglip_eval_ms=t_eval,
                         speedup=t_monai / t_train))
    print(table(rows, 'P2a scan transform, one thread, CPU ms per sample (median)'))


if __name__ == '__main__': main()
