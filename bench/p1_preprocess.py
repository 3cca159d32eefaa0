"""P1 preprocessing: ctglip's cache path (load -> RAS -> resample -> HU window -> organ boxes -> cache write)
vs the naive MONAI dict pipeline (LoadImaged, Orientationd, Spacingd, ScaleIntensityRanged, CropForegroundd),
volumes/s on one core, baseline and candidate in the same process on the same files.

    python bench/p1_preprocess.py            # the embedded case at 3 mm, resampled to 1 mm (realistic), and a CT-RATE-size volume
    python bench/p1_preprocess.py --smoke    # tiny cases, seconds, with the equality checks

Also printed: the gzip inflaters side by side on the same files, where the time of one realistic volume
goes, the peak memory of a worker on the large volume, and `ctglip cache --workers 1` vs `2`.
"""
from __future__ import annotations
import argparse, contextlib, importlib, io, json, os, statistics, subprocess, sys, tempfile, time, warnings, zlib
from pathlib import Path

import numpy as np
import nibabel as nib
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, timeit, table, check

from ctglip.core import embedded_case
from ctglip.data import cache as C
from ctglip.data.cache import cache_scan, cache_cli, organ_boxes, foreground_box

WINDOW = (-1000., 1000.)


def monai_pipeline(spacing, window):
    "The peer recipe, per epoch: decode float, reorient, resample, window, crop the foreground."
    from monai.transforms import (Compose, LoadImaged, EnsureChannelFirstd, Orientationd, Spacingd,
                                  ScaleIntensityRanged, CropForegroundd)
    k = ['image', 'label']
    return Compose([LoadImaged(k), EnsureChannelFirstd(k), Orientationd(k, axcodes='RAS'),
                    Spacingd(k, pixdim=spacing, mode=('bilinear', 'nearest')),
                    ScaleIntensityRanged('image', a_min=window[0], a_max=window[1], b_min=0.0, b_max=1.0, clip=True),
                    CropForegroundd(k, source_key='image')])


def resampled_case(d:Path, name:str, spacing, shape=None) -> dict:
    "The embedded case resampled to `spacing` (torch trilinear / nearest), cropped or padded (air) to `shape`, as int16 / uint8 .nii.gz."
    c = embedded_case(); img, lab = nib.load(str(c['image'])), nib.load(str(c['mask']))
    sp_old = np.sqrt((img.affine[:3, :3]**2).sum(0)); size = [int(round(n * o / s)) for n, o, s in zip(img.shape, sp_old, spacing)]
    x = torch.from_numpy(np.asanyarray(img.dataobj).astype(np.float32))[None, None]
    y = torch.from_numpy(np.asanyarray(lab.dataobj).astype(np.float32))[None, None]
    x = torch.nn.functional.interpolate(x, size=size, mode='trilinear', align_corners=False)[0, 0].round().numpy().astype(np.int16)
    y = torch.nn.functional.interpolate(y, size=size, mode='nearest')[0, 0].numpy().astype(np.uint8)
    aff = img.affine.copy(); aff[:3, :3] = np.diag(spacing)
    if shape is not None:                                                # centre crop / pad with air and background
        sl_in, sl_out = [], []
        for n, m in zip(size, shape):
            a = max(0, (n - m) // 2); b = max(0, (m - n) // 2); k = min(n, m)
            sl_in.append(slice(a, a + k)); sl_out.append(slice(b, b + k))
        X = np.full(shape, -1024, np.int16); Y = np.zeros(shape, np.uint8)
        X[tuple(sl_out)] = x[tuple(sl_in)]; Y[tuple(sl_out)] = y[tuple(sl_in)]; x, y = X, Y
        aff[:3, 3] += aff[:3, :3] @ np.array([s.start - o.start for s, o in zip(sl_in, sl_out)], float)
    nib.save(nib.Nifti1Image(x, aff), d/f'{name}_ct.nii.gz'); nib.save(nib.Nifti1Image(y, aff), d/f'{name}_seg.nii.gz')
    return dict(scan_id=name, image=str(d/f'{name}_ct.nii.gz'), mask=str(d/f'{name}_seg.nii.gz'), split='train')


def interleaved(fns:dict, n:int, warmup:int) -> dict:
    "Median CPU seconds of each function, the functions timed in turn (so a change of load hits all of them alike)."
    for _ in range(warmup):
        for f in fns.values(): f()
    ts = {k: [] for k in fns}
    for _ in range(n):
        for k, f in fns.items():
            t = time.process_time(); f(); ts[k].append(time.process_time() - t)
    return {k: statistics.median(v) for k, v in ts.items()}


def run_case(name, scan, spacing, out, n, warmup, n_careful=None):
    pipe = monai_pipeline(spacing, WINDOW)
    base = lambda: pipe(dict(image=scan['image'], label=scan['mask']))
    fast = lambda: cache_scan(scan, out, spacing, WINDOW)
    slow = lambda: cache_scan(scan, Path(out)/'careful', spacing, WINDOW, fast_path=False)
    t = interleaved(dict(base=base, fast=fast), n, warmup)
    ts = timeit(slow, n_careful or n, 0 if n_careful == 1 else 1, cpu_time=True)
    d, dc = Path(out)/'scans'/scan['scan_id'], Path(out)/'careful'/'scans'/scan['scan_id']
    hu, lab, hu_c, lab_c = (np.load(p/f) for p in (d, dc) for f in ('image.npy', 'labels.npy'))
    m, mc = (json.loads((p/'meta.json').read_text()) for p in (d, dc))
    check(np.array_equal(lab, lab_c) and np.abs(hu.astype(int) - hu_c).max() <= 1 and m['boxes'] == mc['boxes'] and hu.flags.c_contiguous,
          f"{name}: fast path = careful path (labels and organ boxes equal, HU within 1, C-ordered arrays)")
    check(m['boxes'] == {str(k): v for k, v in organ_boxes(lab).items()} and m['fg_box'] == foreground_box(hu),
          f"{name}: cached boxes = boxes of the cached arrays")
    # MONAI keeps the first voxel centre, ctglip the field of view (a half-voxel shift): compare physical content,
    # organ volumes in voxels and mean windowed intensity per organ
    mo = base()
    ours = np.clip((hu.astype(np.float32) - WINDOW[0]) / (WINDOW[1] - WINDOW[0]), 0, 1)
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
    tb, tf = t['base'], t['fast']
    return dict(case=name, input=' x '.join(map(str, nib.load(scan['image']).shape)), output=' x '.join(map(str, m['shape'])),
                monai_s=tb, ctglip_careful_s=ts, ctglip_s=tf, monai_vol_per_s=1/tb, ctglip_vol_per_s=1/tf, speedup=tb/tf)


def _decoders():
    "`{name: (version, inflate(path) -> bytes or byte count)}` for the inflaters installed (ctglip's streamed reader first)."
    res = {f"ctglip slabs ({C._gzip.__name__} readinto)": ('', lambda p: sum(x.shape[0] for _, x in C._Nifti(p).slabs())),
           'zlib (stdlib) one-shot': (zlib.ZLIB_RUNTIME_VERSION, lambda p: zlib.decompress(Path(p).read_bytes(), 47))}
    for name, mod, fn in (('isal', 'isal.isal_zlib', 'decompress'), ('zlib-ng', 'zlib_ng.zlib_ng', 'decompress'),
                          ('libdeflate', 'deflate', 'gzip_decompress')):
        try: m = importlib.import_module(mod)
        except ImportError: continue
        ver = getattr(importlib.import_module(mod.split('.')[0]), '__version__', '')
        f = getattr(m, fn)
        res[f'{name} one-shot'] = (ver, (lambda p, f=f: f(Path(p).read_bytes())) if name == 'libdeflate' else (lambda p, f=f: f(Path(p).read_bytes(), 47)))
        if name != 'libdeflate':                                          # libdeflate has no streaming interface
            def stream(p, m=m):
                d = m.decompressobj(47); buf = bytearray(1 << 18); out = 0
                with open(p, 'rb', buffering=0) as fh:
                    while (k := fh.readinto(buf)): out += len(d.decompress(memoryview(buf)[:k]))
                return out
            res[f'{name} streamed'] = (ver, stream)
    return res


def inflate_table(scan, n):
    "CPU ms to inflate the image and the mask with each library (file read included), and MB/s of output."
    rows = []; ref = {k: zlib.decompress(Path(scan[k]).read_bytes(), 47) for k in ('image', 'mask')}
    for k in ('image', 'mask'):
        with C._open_voxels(scan[k]) as fh: check(fh.read() == ref[k], f"ctglip reader {k}: the bytes of zlib")
    for name, (ver, f) in _decoders().items():
        for k in ('image', 'mask'):
            r = f(scan[k])
            if name.startswith('ctglip'): continue                          # counts planes, checked above
            check(r == ref[k] if isinstance(r, (bytes, bytearray)) else r == len(ref[k]), f"inflate {name} {k}: the bytes (or byte count) of zlib")
        t = {k: timeit(lambda k=k: f(scan[k]), n, 1, cpu_time=True) for k in ('image', 'mask')}
        rows.append(dict(library=name, version=ver, image_ms=t['image'] * 1e3, mask_ms=t['mask'] * 1e3,
                         image_MB_per_s=len(ref['image']) / t['image'] / 1e6, mask_MB_per_s=len(ref['mask']) / t['mask'] / 1e6))
    return rows


def profile_table(scan, spacing, n):
    "Median CPU ms of the stages of one fast-path `cache_scan`."
    im, lb = C._open_pair(scan['image'], scan['mask']); shape, _, _, _ = C._grid(lb, spacing)
    perm = lb.axis[::-1]; s3 = [shape[a] for a in perm]
    ls, hs = C._scratch('lab_s', s3, torch.uint8).numpy(), C._scratch('hu_s', s3, torch.int16)
    hu, lab, _ = C._fast_pair(scan['image'], scan['mask'], spacing, WINDOW)
    d = Path(tempfile.mkdtemp())
    stages = {'open headers (nibabel)': lambda: C._open_pair(scan['image'], scan['mask']),
              'inflate mask (slabs)': lambda: [0 for _ in lb.slabs()],
              'resample labels (incl. inflate)': lambda: C._resample_labels(lb, spacing, ls),
              'inflate image (slabs)': lambda: [0 for _ in im.slabs()],
              'resample image (incl. inflate)': lambda: C._resample_image(im, spacing, WINDOW, hs),
              'transpose to C order (both)': lambda: (C._to_ras(hs, perm, C._scratch('hu', shape, torch.int16)),
                                                      C._to_ras(torch.from_numpy(ls), perm, C._scratch('lab', shape, torch.uint8))),
              'organ boxes + counts': lambda: organ_boxes(lab), 'foreground box': lambda: foreground_box(hu),
              'write image.npy + labels.npy': lambda: (C._save_npy(hu, d/'image.npy'), C._save_npy(lab, d/'labels.npy')),
              'whole cache_scan': lambda: cache_scan(scan, d/'c', spacing, WINDOW)}
    t = interleaved(stages, n, 1)
    return [dict(stage=k, cpu_ms=v * 1e3, share_of_cache_scan=v / t['whole cache_scan']) for k, v in t.items()]


_PEAK = """
import json, sys, warnings; warnings.filterwarnings('ignore')
import torch; torch.set_num_threads(1)
kind, scan, spacing, out = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
if kind == 'ctglip':
    from ctglip.data.cache import cache_scan; f = lambda: cache_scan(scan, out, spacing, (-1000., 1000.))
else:
    sys.path.insert(0, 'bench'); from p1_preprocess import monai_pipeline
    pipe = monai_pipeline(spacing, (-1000., 1000.)); f = lambda: pipe(dict(image=scan['image'], label=scan['mask']))
mb = lambda key: int(next(l.split()[1] for l in open('/proc/self/status') if l.startswith(key))) / 1024
open('/proc/self/clear_refs', 'w').write('5')           # reset the high-water mark to the current resident set
rss = mb('VmRSS:'); f(); peak = mb('VmHWM:')
print(json.dumps(dict(rss_after_imports_MB=rss, peak_MB=peak)))
"""

def peak_memory(scan, spacing, out) -> dict:
    "Resident memory (MB) of a fresh process after its imports, and its peak while it does one volume (Linux /proc), for ctglip and MONAI."
    root = Path(__file__).resolve().parent.parent; res = {}
    for kind in ('ctglip', 'monai'):
        r = subprocess.run([sys.executable, '-c', _PEAK, kind, json.dumps(scan), json.dumps(list(spacing)), str(out)],
                           cwd=root, capture_output=True, text=True, timeout=600)
        if r.returncode: raise SystemExit(r.stderr[-2000:])
        res[kind] = json.loads(r.stdout.strip().splitlines()[-1])
    return res


def scaling_table(scan, n_scans, d:Path, spacing):
    "`ctglip cache --workers W` on `n_scans` copies of one scan: wall-clock volumes/s for W = 1 and 2."
    ds = d/'copies'; ds.mkdir(exist_ok=True)
    (ds/'scans.csv').write_text('scan_id,split,image,mask\n' + ''.join(f"s{i:03d},train,{scan['image']},{scan['mask']}\n" for i in range(n_scans)))
    rows = []
    for w in (1, 2):
        out = d/f'cache_w{w}'; args = [str(ds), '--out', str(out), '--workers', str(w), '--spacing', *map(str, spacing)]
        t = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()): cache_cli(args)
        dt = time.perf_counter() - t
        check(json.loads((out/'manifest.json').read_text())['n_scans'] == n_scans, f"ctglip cache --workers {w}: all {n_scans} scans cached")
        rows.append(dict(workers=w, volumes=n_scans, wall_s=dt, volumes_per_s=n_scans / dt, load_avg_1min=os.getloadavg()[0]))
    for r in rows: r['scaling'] = r['volumes_per_s'] / rows[0]['volumes_per_s']
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--smoke', action='store_true', help='tiny sizes, seconds')
    p.add_argument('--n', type=int, default=None, help='timed iterations (default 10, 5 at realistic size, 3 at CT-RATE size)')
    a = p.parse_args(argv)
    torch.set_num_threads(1); warnings.filterwarnings('ignore')
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d); sp = (1.5, 1.5, 1.5)
        if a.smoke:
            real = resampled_case(d, 'embedded_int16', (3., 3., 3.))
            rows.append(run_case('embedded int16 @3mm -> 2mm', real, (2., 2., 2.), d/'cache', a.n or 2, 1))
            large = resampled_case(d, 'large_smoke', (5., 5., 6.), (80, 80, 50)); lsp, n_copies, n_inf = (6., 6., 6.), 4, 2
            rows.append(run_case('large (smoke: 80 x 80 x 50 @5x5x6mm -> 6mm)', large, lsp, d/'cache', a.n or 2, 1, 1))
        else:
            c = embedded_case()
            rows.append(run_case('embedded @3mm -> 1.5mm', dict(scan_id='embedded', image=str(c['image']), mask=str(c['mask'])),
                                 sp, d/'cache', a.n or 10, 2))
            real = resampled_case(d, 'embedded_1mm', (1., 1., 1.))
            rows.append(run_case('embedded @1mm -> 1.5mm (realistic)', real, sp, d/'cache', a.n or 5, 1))
            large = resampled_case(d, 'ctrate_size', (0.7, 0.7, 1.), (512, 512, 300)); lsp, n_copies, n_inf = sp, 12, 5
            rows.append(run_case('CT-RATE size 512 x 512 x 300 @0.7x0.7x1mm -> 1.5mm', large, lsp, d/'cache', a.n or 3, 1, 1))
        print(f"\nP1 preprocessing, one core (seconds = CPU time of the process, median; baseline and ctglip timed in turn): {machine()}")
        print(table(rows))
        print(f"\ngzip inflate of the realistic case ({Path(real['image']).name}, {Path(real['mask']).name}), CPU ms (file read included), median:")
        print(table(inflate_table(real, n_inf)))
        print("\nWhere the time of one realistic volume goes (fast path, CPU ms, median; stages overlap: the resample rows include their inflate):")
        print(table(profile_table(real, (2., 2., 2.) if a.smoke else sp, n_inf)))
        pk = peak_memory(large, lsp, d/'peak'); s = rows[-1]['ctglip_s']
        big = dict(case=rows[-1]['case'], s_per_volume_per_core=s, volumes_per_hour_per_core=3600 / s,
                   core_hours_for_50000=50000 * s / 3600, worker_rss_after_imports_MB=pk['ctglip']['rss_after_imports_MB'],
                   worker_peak_MB=pk['ctglip']['peak_MB'], added_by_one_volume_MB=pk['ctglip']['peak_MB'] - pk['ctglip']['rss_after_imports_MB'],
                   monai_added_MB=pk['monai']['peak_MB'] - pk['monai']['rss_after_imports_MB'])
        print("\nLarge volume: sizing a cache build (memory: resident set of a fresh worker process, its peak while it caches one volume):")
        print(table([big]))
        print(f"\nctglip cache --workers W on {n_copies} copies of the realistic case (wall clock; the machine is shared):")
        print(table(scaling_table(real, n_copies, d, sp if not a.smoke else (2., 2., 2.))))
    return rows


if __name__ == '__main__': main()
