"The cache's fast reader equals the careful `ctglip.data.volume` path on awkward inputs; the loader survives bad data."
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ctglip.core import CtglipError, embedded_case
from ctglip.data.cache import _fast_pair, read_pair, cache_scan, build_cache, merge_manifests, cache_cli, Cache
from ctglip.data.layout import find_scans, shard_of
from ctglip.synth.core import generate


def _scans(folder, n):
    "`n` small SynthCT scans as the dicts `build_cache` takes."
    return [dict(scan_id=s.scan_id, split=s.split, image=s.image, mask=s.mask) for s in find_scans(generate(folder, n, seed=0, size='demo', workers=1))]


def _same(image, mask, spacing):
    fast = _fast_pair(image, mask, spacing, (-1000, 1000))
    assert fast is not None, 'fast path refused a plain NIfTI pair'
    hu_s, lab_s, aff_s = read_pair(image, mask, spacing, (-1000, 1000))
    hu_f, lab_f, aff_f = fast
    assert lab_f.shape == lab_s.shape and np.array_equal(lab_f, lab_s)
    assert np.abs(hu_f.astype(int) - hu_s).max() <= 1
    assert np.allclose(aff_f, aff_s, atol=1e-6)


@pytest.mark.parametrize('codes', ['LPS', 'LAS', 'PIR'])
@pytest.mark.parametrize('spacing', [(1.5, 1.5, 1.5), (4.0, 2.5, 5.0)])
def test_fast_path_equals_careful_path_any_orientation(tmp_path, codes, spacing):
    c = embedded_case(); img, lab = nib.load(str(c['image'])), nib.load(str(c['mask']))
    ornt = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt('RAS'), nib.orientations.axcodes2ornt(tuple(codes)))
    for src, name, dt in ((img, 'ct.nii.gz', np.int16), (lab, 'seg.nii.gz', np.uint8)):
        o = src.as_reoriented(ornt); o = nib.Nifti1Image(np.asanyarray(o.dataobj).astype(dt), o.affine)
        nib.save(o, tmp_path/name)
    assert ''.join(nib.aff2axcodes(nib.load(str(tmp_path/'ct.nii.gz')).affine)) == codes
    _same(tmp_path/'ct.nii.gz', tmp_path/'seg.nii.gz', spacing)


def test_fast_path_applies_scaling(tmp_path):
    c = embedded_case(); img, lab = nib.load(str(c['image'])), nib.load(str(c['mask']))
    raw = np.asanyarray(img.dataobj).astype(np.float32)
    scaled = nib.Nifti1Image(((raw + 1024) / 2).astype(np.uint16), img.affine)     # stored = (HU + 1024) / 2
    scaled.header.set_slope_inter(2.0, -1024.0); nib.save(scaled, tmp_path/'ct.nii.gz')
    nib.save(nib.Nifti1Image(np.asanyarray(lab.dataobj).astype(np.uint8), lab.affine), tmp_path/'seg.nii.gz')
    _same(tmp_path/'ct.nii.gz', tmp_path/'seg.nii.gz', (3.0, 3.0, 3.0))


def test_unusual_inputs_take_the_careful_path(tmp_path):
    s = _scans(tmp_path/'synth', 1)[0]
    folder = tmp_path/'perclass'; folder.mkdir()                                      # per-class mask folder
    lab = nib.load(s['mask']); arr = np.asanyarray(lab.dataobj)
    for i, name in ((5, 'liver'), (1, 'spleen')): nib.save(nib.Nifti1Image((arr == i).astype(np.uint8), lab.affine), folder/f'{name}.nii.gz')
    assert _fast_pair(s['image'], folder, (4., 4., 4.), (-1000, 1000)) is None
    meta = cache_scan(dict(s, mask=str(folder), scan_id='pc'), tmp_path/'c', (4., 4., 4.))
    assert sorted(meta['boxes']) == ['1', '5']


def test_bad_scans_are_listed_with_reasons(tmp_path):
    scans = _scans(tmp_path/'synth', 4)
    Path(scans[0]['mask']).write_bytes(b'\x1f\x8b broken')                            # corrupt gzip
    img = nib.load(scans[1]['image']); a = np.asanyarray(img.dataobj).astype(np.float32); a[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(a, img.affine), scans[1]['image'])                      # NaN voxel
    lab = nib.load(scans[2]['mask']); nib.save(nib.Nifti1Image(np.zeros(lab.shape, np.uint8), lab.affine), scans[2]['mask'])
    man = build_cache(scans, tmp_path/'cache', (4., 4., 4.), workers=2)
    assert sorted(man['scans']) == [scans[3]['scan_id']]
    bad = man['bad']
    assert 'NaN' in bad[scans[1]['scan_id']] and 'empty' in bad[scans[2]['scan_id']] and bad[scans[0]['scan_id']]
    assert json.loads((tmp_path/'cache/manifest.json').read_text())['bad'] == bad


def test_fast_path_without_isal_uses_zlib_and_gives_the_same_arrays(tmp_path):
    "With ISA-L absent the streamed reader falls back to the standard library's zlib, with equal arrays."
    import subprocess, sys
    c = embedded_case()
    code = ("import sys; sys.modules['isal'] = None\n"
            "import numpy as np, gzip\nfrom ctglip.data import cache\n"
            "assert cache._gzip is gzip, cache._gzip\n"
            f"hu, lab, aff = cache._fast_pair({str(c['image'])!r}, {str(c['mask'])!r}, (2.0, 2.5, 3.0), (-1000, 1000))\n"
            f"np.savez({str(tmp_path/'z.npz')!r}, hu=hu, lab=lab, aff=aff)\n")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    z = np.load(tmp_path/'z.npz'); hu, lab, aff = _fast_pair(c['image'], c['mask'], (2.0, 2.5, 3.0), (-1000, 1000))
    assert np.array_equal(z['hu'], hu) and np.array_equal(z['lab'], lab) and np.array_equal(z['aff'], aff)


def test_fast_path_reads_plain_nii_and_multi_member_gzip(tmp_path):
    import gzip
    c = embedded_case(); img, lab = nib.load(str(c['image'])), nib.load(str(c['mask']))
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj).astype(np.int16), img.affine), tmp_path/'ct.nii')
    raw = gzip.decompress(Path(c['mask']).read_bytes()); k = len(raw) // 3
    (tmp_path/'seg.nii.gz').write_bytes(gzip.compress(raw[:k]) + gzip.compress(raw[k:]))      # two gzip members
    _same(tmp_path/'ct.nii', tmp_path/'seg.nii.gz', (1.5, 2.0, 2.5))


def test_truncated_file_gives_a_clear_error(tmp_path):
    c = embedded_case(); raw = Path(c['image']).read_bytes()
    (tmp_path/'ct.nii.gz').write_bytes(raw[:len(raw) // 2])
    assert _fast_pair(tmp_path/'ct.nii.gz', c['mask'], (4., 4., 4.), (-1000, 1000)) is None
    with pytest.raises(CtglipError, match='ct.nii.gz'):
        cache_scan(dict(scan_id='t', image=str(tmp_path/'ct.nii.gz'), mask=str(c['mask'])), tmp_path/'c', (4., 4., 4.))


def test_cache_scan_fast_equals_careful_on_disk(tmp_path):
    c = embedded_case(); s = dict(scan_id='e', image=str(c['image']), mask=str(c['mask']))
    mf = cache_scan(s, tmp_path/'f', (2., 2., 2.)); ms = cache_scan(s, tmp_path/'s', (2., 2., 2.), fast_path=False)
    lf, ls = (np.load(tmp_path/d/'scans/e/labels.npy') for d in ('f', 's'))
    hf, hs = (np.load(tmp_path/d/'scans/e/image.npy') for d in ('f', 's'))
    assert lf.flags.c_contiguous and hf.flags.c_contiguous and lf.dtype == np.uint8 and hf.dtype == np.int16
    assert np.array_equal(lf, ls) and np.abs(hf.astype(int) - hs).max() <= 1
    assert mf['boxes'] == ms['boxes'] and mf['shape'] == ms['shape'] == list(lf.shape)


def test_shards_write_their_own_manifests_and_merge(tmp_path):
    scans = _scans(tmp_path/'synth', 5); out = tmp_path/'cache'
    m0 = build_cache(scans, out, (4., 4., 4.), workers=1, shard=(0, 3))
    m2 = build_cache(scans, out, (4., 4., 4.), workers=1, shard=(2, 3))
    assert (m0['shard'], m2['shard']) == ([0, 3], [2, 3]) and not (out/'manifest.json').exists()
    assert sorted([*m0['scans'], *m0['bad']]) == sorted(s['scan_id'] for s in scans if shard_of(s['scan_id'], 3) == 0)   # by hash of the id
    with pytest.raises(CtglipError, match='shards 1/3'): merge_manifests(out)
    with pytest.raises(CtglipError, match='1 of 3|2 of 3'): Cache(out)
    man = build_cache(scans, out, (4., 4., 4.), workers=1, shard=(1, 3))             # the last shard merges
    assert man['shards'] == 3 and sorted(man['scans']) == [s['scan_id'] for s in scans]
    assert json.loads((out/'manifest.json').read_text()) == man == merge_manifests(out, 3)
    assert cache_cli([str(tmp_path/'synth'), '--out', str(out), '--merge']) == 0 and len(Cache(out)) == 5


def test_blank_headers_take_the_careful_path(tmp_path):
    "A CT-RATE v1 pair (blank headers, stored values, metadata row) is refused by the fast reader and cached like its v2 twin."
    c = embedded_case(); img, lab = nib.load(str(c['image'])), nib.load(str(c['mask']))
    nib.save(nib.Nifti1Image((np.asanyarray(img.dataobj) + 1024).astype(np.int16), None), tmp_path/'ct.nii.gz')
    nib.save(nib.Nifti1Image(np.asanyarray(lab.dataobj).astype(np.uint8), None), tmp_path/'seg.nii.gz')
    a = img.affine; sp = np.sqrt((a[:3, :3]**2).sum(0)); assert ''.join(nib.aff2axcodes(a)) == 'RAS'
    # RAS array: row cosine -x, column cosine -y in LPS; the first voxel's LPS position
    row = dict(XYSpacing=f'[{sp[0]}, {sp[1]}]', ZSpacing=str(sp[2]), ImageOrientationPatient='[-1, 0, 0, 0, -1, 0]',
               ImagePositionPatient=str((a[:3, 3] * [-1, -1, 1]).tolist()), RescaleSlope='1', RescaleIntercept='-1024')
    v1 = dict(scan_id='v1', image=str(tmp_path/'ct.nii.gz'), mask=str(tmp_path/'seg.nii.gz'), meta=row)
    assert _fast_pair(v1['image'], v1['mask'], (4., 4., 4.), (-1000, 1000)) is None
    m1 = cache_scan(v1, tmp_path/'c', (4., 4., 4.)); m2 = cache_scan(dict(scan_id='v2', image=str(c['image']), mask=str(c['mask']), meta=row), tmp_path/'c', (4., 4., 4.))
    assert np.allclose(m1['affine'], m2['affine'], atol=1e-4) and m1['boxes'] == m2['boxes']
    h1, h2 = (np.load(tmp_path/'c'/'scans'/s/'image.npy') for s in ('v1', 'v2'))
    assert np.abs(h1.astype(int) - h2).max() <= 1 and h2.min() == -1000       # HU once: v1 rescaled, v2 (header, HU) kept


def test_cache_shards_follow_the_scan_id_hash(tmp_path):
    "A scan's cache shard is `shard_of` its id, the pairing rule: scans added to the dataset move no other scan."
    scans = _scans(tmp_path/'synth', 4); out = tmp_path/'cache'
    extra = [dict(s, scan_id=f"a_{s['scan_id']}") for s in scans]             # more scans, sorted before the others
    share = lambda pool, i, n: {s['scan_id'] for s in pool if shard_of(s['scan_id'], n) == i}
    for n in (2, 3):
        assert all(share(scans, i, n) <= share(extra + scans, i, n) for i in range(n))
    m = build_cache(scans, out, (6., 6., 6.), workers=1, shard=(1, 2))
    assert sorted([*m['scans'], *m['bad']]) == sorted(share(scans, 1, 2))
    with pytest.raises(CtglipError, match='I/N'): cache_cli([str(tmp_path/'synth'), '--out', str(out), '--shard', 'x'])
    with pytest.raises(CtglipError, match='need 0 <= I < N'): build_cache(scans, out, (6., 6., 6.), workers=1, shard=(2, 2))
