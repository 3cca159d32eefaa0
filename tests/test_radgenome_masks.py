"""RadGenome-ChestCT region masks end to end: per-scan folders of `<region>.nii.gz` (or a label map with a JSON
legend) made from the CT-RATE-shaped fixture's TotalSegmentator masks pair, cache and read like the label map
of the same units."""
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from ctglip.anatomy import name2id
from ctglip.core import CtglipError
from ctglip.data.layout import find_scans, read_pairs
from ctglip.data.pairing import pairs_cli
from ctglip.data.cache import cache_cli
from ctglip.data.volume import read_mask, read_scan

REGIONS = {'liver': 'liver', 'right lung upper lobe': 'lung_upper_lobe_right', 'aorta': 'aorta'}   # region file -> class


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    "The fixture, its region masks (`regions/<scan>/<region>.nii.gz`, one scan as a label map + legend) and the equivalent label maps."
    from test_ctrate import make_ctrate
    base = tmp_path_factory.mktemp('rgm'); make_ctrate(base/'d', studies={'train': [(1, 1)], 'valid': [(1, 1), (2, 1)]})
    ids = name2id('v2'); keep = [ids[c] for c in REGIONS.values()]
    for k, s in enumerate(find_scans(base/'d')):
        m = nib.load(s.mask); lab = np.asarray(m.dataobj); d = base/'regions'/s.scan_id; d.mkdir(parents=True)
        if k == 0:   # a label map with its legend
            (d/'legend.json').write_text(json.dumps({str(ids[c]): r for r, c in REGIONS.items()} | {'200': 'mediastinum'}))
            nib.save(nib.Nifti1Image(np.where(np.isin(lab, keep), lab, 0).astype(np.uint8), m.affine), d/'regions.nii.gz')
        else:
            for r, c in REGIONS.items(): nib.save(nib.Nifti1Image((lab == ids[c]).astype(np.uint8), m.affine), d/f'{r}.nii.gz')
            nib.save(nib.Nifti1Image((lab > 0).astype(np.uint8), m.affine), d/'mediastinum.nii.gz')   # a scan-level region: ignored
        (base/'labels').mkdir(exist_ok=True)
        nib.save(nib.Nifti1Image(np.where(np.isin(lab, keep), lab, 0).astype(np.uint8), m.affine), base/'labels'/f'{s.scan_id}.nii.gz')
    return base


def test_region_masks_read_as_the_label_map_of_their_units(data):
    for s in find_scans(data/'d', data/'regions'):
        img, got = read_scan(s.image, s.mask, s.meta)
        np.testing.assert_array_equal(got.array, read_mask(data/'labels'/f'{s.scan_id}.nii.gz', like=img).array)
        assert got.array.any()


def test_pairs_from_region_masks_equal_pairs_from_the_label_map(data):
    for masks in ('regions', 'labels'):
        assert pairs_cli([str(data/'d'), '--out', str(data/f'w_{masks}'), '--masks', str(data/masks), '--keep-truncated']) == 0
    got, want = read_pairs(data/'w_regions'/'pairs.jsonl'), read_pairs(data/'w_labels'/'pairs.jsonl')
    assert got == want and {p['organ'] for p in got} <= {'liver', 'lung', 'aorta'} and 'liver' in {p['organ'] for p in got}


def test_the_cache_of_region_masks_equals_the_cache_of_the_label_map(data):
    for masks in ('regions', 'labels'):
        assert cache_cli([str(data/'d'), '--out', str(data/f'c_{masks}'), '--masks', str(data/masks), '--workers', '1', '--spacing', '3', '3', '3']) == 0
    for s in find_scans(data/'d'):
        a, b = (np.load(data/f'c_{m}'/'scans'/s.scan_id/'labels.npy') for m in ('regions', 'labels'))
        np.testing.assert_array_equal(a, b)


def test_a_bad_region_name_or_shape_names_the_file(data, tmp_path):
    s = find_scans(data/'d', data/'regions')[1]; d = tmp_path/s.scan_id; d.mkdir()
    for f in (data/'regions'/s.scan_id).iterdir(): (d/f.name).write_bytes(f.read_bytes())
    (d/'left lungs.nii.gz').write_bytes((d/'liver.nii.gz').read_bytes())
    with pytest.raises(CtglipError, match=r"left lungs\.nii\.gz: 'left lungs' is neither a TotalSegmentator class name nor a RadGenome region"):
        read_scan(s.image, d)
    (d/'left lungs.nii.gz').unlink(); m = nib.load(d/'liver.nii.gz')
    nib.save(nib.Nifti1Image(np.asarray(m.dataobj)[:-1], m.affine), d/'liver.nii.gz')
    with pytest.raises(CtglipError, match=r"liver\.nii\.gz: region mask shape .* differs"):
        read_scan(s.image, d)
    for f in (data/'regions'/s.scan_id).iterdir():   # every region file on one grid, but not the image's: resampled onto it
        m = nib.load(f); f = d/f.name; nib.save(nib.Nifti1Image(np.asarray(m.dataobj)[:-1], m.affine), f)
    img, got = read_scan(s.image, d); ref = read_scan(s.image, data/'regions'/s.scan_id)[1]
    assert nib.load(d/'liver.nii.gz').shape != img.shape and got.shape == img.shape
    np.testing.assert_array_equal(got.array, ref.array)   # the slice cut off held no region voxel


def test_pairing_skips_a_bad_region_mask_with_one_line_naming_the_file(data, tmp_path, caplog):
    s = find_scans(data/'d', data/'regions')[1]; d = tmp_path/'m'/s.scan_id; d.mkdir(parents=True)
    for f in (data/'regions'/s.scan_id).iterdir(): (d/f.name).write_bytes(f.read_bytes())
    (d/'left lungs.nii.gz').write_bytes((d/'liver.nii.gz').read_bytes())
    assert pairs_cli([str(data/'d'), '--out', str(tmp_path/'w'), '--masks', str(tmp_path/'m')]) == 0
    msg = [r.getMessage() for r in caplog.records if s.scan_id in r.getMessage()]
    assert len(msg) == 1 and 'left lungs.nii.gz' in msg[0] and '\n' not in msg[0]


def test_radgenome_as_it_ships(data, tmp_path):
    """RadGenome-ChestCT's `seg_<volume>/` region folders on another grid (its `*_preprocessed` volumes: coarser, shifted) are
    found and resampled onto the CT-RATE volume through the affines, nearest neighbour as `ctglip organs --resample-mask`,
    in pairs and cache alike; `*_preprocessed` split folders are the train/valid splits."""
    import shutil
    from ctglip.data.volume import load_mask, resample, resample_to
    from ctglip.data.layout import find_mask
    rg = tmp_path/'rg'
    for s in find_scans(data/'d'):
        src = data/'regions'/s.scan_id
        if any(src.glob('*.json')): continue   # the legend scan keeps its layout
        d = rg/f'seg_{s.scan_id}'; d.mkdir(parents=True)
        for f in src.glob('*.nii.gz'):
            v = nib.load(f); a = v.affine.copy(); a[:3, :3] *= 1.5; a[:3, 3] += 1.0   # another grid over the same anatomy
            arr = ndimage.zoom(np.asarray(v.dataobj), 1 / 1.5, order=0)
            nib.save(nib.Nifti1Image(arr.astype(np.uint8), a), d/f.name)
    scans = [s for s in find_scans(data/'d', rg) if s.mask]
    assert scans and all(Path(s.mask).name == f'seg_{s.scan_id}' for s in scans)
    for s in scans:
        img, got = read_scan(s.image, s.mask, s.meta)
        want = resample_to(load_mask(s.mask), img, order=0)             # the --resample-mask rule
        np.testing.assert_array_equal(got.array, want.array)
        ref = read_scan(s.image, data/'regions'/s.scan_id)[1].array
        assert (got.array > 0).sum() > 0 and ((got.array > 0) & (ref > 0)).sum() > 0.5 * (ref > 0).sum()
    keep = [s.scan_id for s in scans]
    only = tmp_path/'only'
    for s in scans: shutil.copytree(s.mask, only/Path(s.mask).name)
    assert pairs_cli([str(data/'d'), '--out', str(tmp_path/'w'), '--masks', str(only), '--keep-truncated']) == 0
    assert {p['scan_id'] for p in read_pairs(tmp_path/'w'/'pairs.jsonl')} <= set(keep)
    assert cache_cli([str(data/'d'), '--out', str(tmp_path/'c'), '--masks', str(only), '--workers', '1', '--spacing', '3', '3', '3']) == 0
    assert all((tmp_path/'c'/'scans'/k/'labels.npy').exists() for k in keep)
    pre = tmp_path/'pre'; shutil.copytree(data/'d', pre)
    for sp in ('train_fixed', 'valid_fixed'): (pre/'dataset'/sp).rename(pre/'dataset'/sp.replace('_fixed', '_preprocessed'))
    got = find_scans(pre, splits=['valid'])
    assert got and {s.split for s in got} == {'valid'} and all('/valid_preprocessed/' in s.image for s in got)
