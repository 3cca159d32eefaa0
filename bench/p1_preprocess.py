"""P1 preprocessing: ctglip's cache path (load -> RAS -> resample -> HU window -> organ boxes -> cache write)
vs the naive MONAI dict pipeline (LoadImaged, Orientationd, Spacingd, ScaleIntensityRanged, CropForegroundd),
volumes/s on one core, baseline and candidate in the same process on the same files.

    python bench/p1_preprocess.py            # the embedded case at 3 mm, and resampled to 1 mm (realistic size)
    python bench/p1_preprocess.py --smoke    # a tiny toy case, seconds, with the equality checks
"""
from __future__ import annotations
import argparse, sys, tempfile, warnings
from pathlib import Path

import numpy as np
import nibabel as nib
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, timeit, table, check

from ctglip.core import embedded_case
from ctglip.data.cache import cache_scan, make_toy_dataset, find_scans


def monai_pipeline(spacing, window):
    "The peer recipe, per epoch: decode float, reorient, resample, window, crop the foreground."
    from monai.transforms import (Compose, LoadImaged, EnsureChannelFirstd, Orientationd, Spacingd,
                                  ScaleIntensityRanged, CropForegroundd)
    k = ['image', 'label']
    return Compose([LoadImaged(k), EnsureChannelFirstd(k), Orientationd(k, axcodes='RAS'),
                    Spacingd(k, pixdim=spacing, mode=('bilinear', 'nearest')),
                    ScaleIntensityRanged('image', a_min=window[0], a_max=window[1], b_min=0.0, b_max=1.0, clip=True),
                    CropForegroundd(k, source_key='image')])


def realistic_case(d:Path) -> dict:
    "The embedded case resampled to 1 mm (366 x 303 x 336), written as .nii.gz int16 / uint8."
    from ctglip.data.volume import load_volume, load_mask, resample_pair
    c = embedded_case(); img = load_volume(c['image']); lab = load_mask(c['mask'], like=img)
    img, lab = resample_pair(img, lab, (1., 1., 1.))
    nib.save(nib.Nifti1Image(np.rint(img.array).astype(np.int16), img.affine), d/'ct_1mm.nii.gz')
    nib.save(nib.Nifti1Image(lab.array.astype(np.uint8), lab.affine), d/'seg_1mm.nii.gz')
    return dict(scan_id='embedded_1mm', image=str(d/'ct_1mm.nii.gz'), mask=str(d/'seg_1mm.nii.gz'), split='train')


def run_case(name, scan, spacing, window, out, n, warmup):
    pipe = monai_pipeline(spacing, window)
    base = lambda: pipe(dict(image=scan['image'], label=scan['mask']))
    fast = lambda: cache_scan(scan, out, spacing, window)
    slow = lambda: cache_scan(scan, Path(out)/'careful', spacing, window, fast_path=False)
    tb, tf, ts = (timeit(f, n, warmup, cpu_time=True) for f in (base, fast, slow))
    a = [np.load(Path(o)/'scans'/scan['scan_id']/f) for o in (out, Path(out)/'careful') for f in ('image.npy', 'labels.npy')]
    check((a[1] == a[3]).all() and np.abs(a[0].astype(int) - a[2]).max() <= 1, f"{name}: fast path = careful path (labels equal, HU within 1)")
    # equality (the grids differ by design: MONAI keeps the first voxel centre, ctglip the field of view;
    # so compare physical content): organ volumes in ml and mean windowed intensity per organ
    mo = base(); meta = fast()
    hu = np.load(Path(out)/'scans'/scan['scan_id']/'image.npy'); lab = np.load(Path(out)/'scans'/scan['scan_id']/'labels.npy')
    ours = np.clip((hu.astype(np.float32) - window[0]) / (window[1] - window[0]), 0, 1)
    ml, mi = np.asarray(mo['label'][0]).astype(np.int64), np.asarray(mo['image'][0])
    n_o, n_m = np.bincount(lab.ravel(), minlength=256), np.bincount(ml.ravel(), minlength=256)
    s_o, s_m = np.bincount(lab.ravel(), ours.ravel(), minlength=256), np.bincount(ml.ravel(), mi.ravel(), minlength=256)
    big = np.flatnonzero(n_o[1:] >= 300) + 1
    rel = np.abs(n_o[big] - n_m[big]) / n_o[big]
    # thin structures (ribs, cartilage) change volume under a half-voxel shift: bound the median and the total too
    tot = np.abs(n_o[1:] - n_m[1:]).sum() / n_o[1:].sum()
    check(len(big) > 0 and np.median(rel) < 0.02 and tot < 0.05,
          f"{name}: volumes of {len(big)} organs agree with MONAI (median {np.median(rel):.2%}, max {rel.max():.2%}, total |diff| {tot:.2%})")
    dm = np.abs(s_o[big] / n_o[big] - s_m[big] / np.maximum(n_m[big], 1))
    check(np.median(dm) < 0.005 and dm.max() < 0.03, f"{name}: mean windowed intensity per organ agrees with MONAI (median |diff| {np.median(dm):.4f}, max {dm.max():.4f})")
    return dict(case=name, input=' x '.join(map(str, nib.load(scan['image']).shape)), output=' x '.join(map(str, meta['shape'])),
                monai_s=tb, ctglip_careful_s=ts, ctglip_s=tf, monai_vol_per_s=1/tb, ctglip_vol_per_s=1/tf, speedup=tb/tf)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--smoke', action='store_true', help='tiny sizes, seconds')
    p.add_argument('--n', type=int, default=None, help='timed iterations (default 10, 3 at realistic size)')
    a = p.parse_args(argv)
    torch.set_num_threads(1); warnings.filterwarnings('ignore')
    window = (-1000., 1000.)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        if a.smoke:
            ds = make_toy_dataset(d/'toy', n=1, shape=(64, 56, 48))
            rows.append(run_case('toy 64x56x48 @3mm -> 4mm', find_scans(ds)[0], (4., 4., 4.), window, d/'cache', a.n or 3, 1))
        else:
            c = embedded_case()
            rows.append(run_case('embedded @3mm -> 1.5mm', dict(scan_id='embedded', image=str(c['image']), mask=str(c['mask'])),
                                 (1.5, 1.5, 1.5), window, d/'cache', a.n or 10, 2))
            rows.append(run_case('embedded @1mm -> 1.5mm (realistic)', realistic_case(d), (1.5, 1.5, 1.5), window, d/'cache', a.n or 3, 1))
    print(f"\nP1 preprocessing, one core (seconds = CPU time of the process, median): {machine()}")
    print(table(rows))
    return rows


if __name__ == '__main__': main()
