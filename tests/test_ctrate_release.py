"""CT-RATE exactly as it downloads: everything under `dataset/` (split folders v1 and v2, the CSV folders, the shipped
TotalSegmentator masks in `ts_seg/ts_total`, `vqa/` and `anatomy_segmentation_labels/` beside them, `no_chest_valid.txt`),
read, trained on and scored with no flag beyond `--data`; `ctglip evaluate --protocol ctclip` and `--label-set ct-rate-16`."""
import json, shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from test_ctrate import make_ctrate, ctglip, CTRATE_LABELS

STUDIES = {'train': [(1, 2), (2, 1), (3, 1)], 'valid': [(1, 2), (2, 1), (3, 2), (4, 1), (5, 1), (6, 1), (7, 1)]}
V1_ONLY = 'valid_3_a_1.nii.gz'   # only in dataset/valid/ (v1), saved with an identity matrix: raw values, 1 mm
V1_AND_V2 = {'valid_1_a_2.nii.gz', 'train_2_a_1.nii.gz'}   # in dataset/<split>/ (v1, blank header) and dataset/<split>_fixed/ (v2)
NO_CHEST = 'valid_6_a_1.nii.gz'


def make_release(root) -> dict:
    "A folder laid out like the CT-RATE download (see the module docstring); returns make_ctrate's dict with `v1` (moved files)."
    from ctglip.data.volume import load_volume, save_volume
    d = make_ctrate(root, STUDIES, blank_header=V1_AND_V2 | {V1_ONLY}, metadata=True)
    root, ds = d['root'], d['root']/'dataset'
    for t in ('radiology_text_reports', 'metadata', 'multi_abnormality_labels'): shutil.move(str(root/t), str(ds/t))
    meta = pd.concat([pd.read_csv(p) for p in (ds/'metadata').glob('*.csv')]).set_index('VolumeName')
    ts = ds/'ts_seg'/'ts_total'
    for v in d['volumes']:
        rel = v.relative_to(ds)   # <split>_fixed/<patient>/<study>/<name>
        m = root/'masks'/rel if (root/'masks'/rel).exists() else root/'masks'/v.name
        (ts/rel).parent.mkdir(parents=True, exist_ok=True); shutil.move(str(m), str(ts/rel))
        if v.name in V1_AND_V2 | {V1_ONLY}:
            v1 = ds/rel.parts[0].replace('_fixed', '')/Path(*rel.parts[1:]); v1.parent.mkdir(parents=True, exist_ok=True)
            if v.name == V1_ONLY:   # the stored array saved with an identity matrix (sform code 2)
                nib.save(nib.Nifti1Image(np.asarray(nib.load(v).dataobj), np.eye(4)), v1); v.unlink()
            else:                   # the v1 file as released, and its v2 copy (header, HU)
                shutil.copy(v, v1); save_volume(load_volume(v1, meta=meta.loc[v.name].to_dict()), v)
    shutil.rmtree(root/'masks')
    (ds/'vqa').mkdir(); shutil.copy(ts/'valid_fixed'/'valid_2'/'valid_2_a'/'valid_2_a_1.nii.gz', ds/'vqa'/'valid_2_a_1.nii.gz')
    (ds/'anatomy_segmentation_labels').mkdir(); (ds/'anatomy_segmentation_labels'/'readme.txt').write_text('not a split\n')
    (ds/'no_chest_valid.txt').write_text(f'{NO_CHEST}\n'); (ds/'no_chest_train.txt').write_text('')
    return d


@pytest.fixture(scope='module')
def release(tmp_path_factory):
    return make_release(tmp_path_factory.mktemp('release')/'CT-RATE')


def test_release_scans(release, caplog):
    from ctglip.data.layout import find_scans
    root = release['root']
    with caplog.at_level('INFO', logger='ctglip.data'): scans = find_scans(root)
    by = {s.scan_id: s for s in scans}
    valid = [f"valid_{p}_a_{r}" for p, n in STUDIES['valid'] for r in range(1, n + 1)]
    assert sorted(s for s in by if s.startswith('valid')) == sorted(v for v in valid if v + '.nii.gz' != NO_CHEST)   # each once
    assert {s.split for s in scans} == {'train', 'valid'} and all(s.mask and '/ts_seg/ts_total/' in s.mask for s in scans)
    assert all(Path(by[n[:-7]].image).parts[-4].endswith('_fixed') for n in V1_AND_V2)                                # v2 preferred
    assert Path(by[V1_ONLY[:-7]].image).parts[-4] == 'valid' and '/valid_fixed/' in by[V1_ONLY[:-7]].mask             # v1 finds the v2 mask
    assert all(s.has_report and s.meta for s in scans)                                                                # CSVs under dataset/
    log = caplog.text
    assert '2 CT-RATE v1 volume(s) set aside for their v2 copy' in log and '1 volume(s) listed in no_chest_*.txt' in log
    assert NO_CHEST[:-7] in {s.scan_id for s in find_scans(root, keep_non_chest=True)}


def test_release_v1_identity_header_read_by_its_metadata(release):
    from ctglip.data.layout import find_scans
    from ctglip.data.volume import read_scan
    s = next(s for s in find_scans(release['root']) if s.scan_id == V1_ONLY[:-7])
    assert nib.load(s.image).header['sform_code'] == 2 and np.allclose(nib.load(s.image).affine, np.eye(4))
    img, msk = read_scan(s.image, s.mask, s.meta)
    assert img.spacing != (1.0, 1.0, 1.0) and img.array.min() < -900 and (msk.array > 0).any()   # metadata geometry, HU


def test_duplicate_names_both_files(release, tmp_path):
    from ctglip.core import CtglipError
    from ctglip.data.layout import find_scans
    root = tmp_path/'dup'; shutil.copytree(release['root'], root)
    extra = root/'dataset'/'valid_fixed'/'valid_9'/'valid_2_a_1.nii.gz'; extra.parent.mkdir(parents=True)
    shutil.copy(root/'dataset'/'valid_fixed'/'valid_2'/'valid_2_a'/'valid_2_a_1.nii.gz', extra)
    with pytest.raises(CtglipError, match="'valid_2_a_1' occurs twice: .*valid_2_a_1.nii.gz and .*valid_2_a_1.nii.gz"): find_scans(root)


def test_release_train_and_evaluate_with_no_other_flag(release, tmp_path, monkeypatch):
    from ctglip.data.layout import study_id
    monkeypatch.setenv('CTGLIP_CACHE', str(tmp_path/'cache'))
    root, run = release['root'], tmp_path/'run'
    rc, _, err = ctglip('train', '--preset', 'tiny', '--data', root, '--out', run, 'steps=2')
    assert rc == 0, err[-2000:]
    labels = pd.concat(release['labels'].values()).assign(s=lambda d: d.VolumeName.str[:-7]).set_index('s')
    valid = sorted(s for s in labels.index if s.startswith('valid') and s + '.nii.gz' != NO_CHEST)
    rc, _, err = ctglip('evaluate', run, '--data', root, '--split', 'valid', '--label-set', 'ct-rate', '--out', tmp_path/'ours', '--n-boot', 20)
    assert rc == 0, err[-2000:]
    ours = json.loads((tmp_path/'ours'/'metrics.json').read_text())
    assert ours['n_scans'] + ours['n_calibration'] == len(valid) and ours['protocol']['name'] == 'ctglip'
    assert ours['protocol']['non_chest_left_out'] == 1 and ours['protocol']['bootstrap']['unit'].startswith('study')
    rc, _, err = ctglip('evaluate', run, '--data', root, '--split', 'valid', '--label-set', 'ct-rate', '--out', tmp_path/'cc',
                        '--n-boot', 20, '--protocol', 'ctclip')
    assert rc == 0, err[-2000:]
    cc = json.loads((tmp_path/'cc'/'metrics.json').read_text()); sc = pd.read_csv(tmp_path/'cc'/'scores.csv', index_col=0)
    assert sorted(sc.index) == valid and (sc.part == 'scored').all()                          # every valid volume, once
    assert (cc['n_scans'], cc['n_studies'], cc['n_calibration']) == (len(valid), len({study_id(s) for s in valid}), 0)
    y = labels.loc[valid, CTRATE_LABELS]; both = [k for k in CTRATE_LABELS if 0 < y[k].sum() < len(y)]
    assert cc['n_labels_macro'] == len(both) and all(cc['labels'][k]['f1_weighted'] is not None for k in both)
    assert cc['protocol']['threshold']['rule'] == 'roc corner' and cc['protocol']['name'] == 'ctclip'
    assert 'F1 (weighted)' in (tmp_path/'cc'/'metrics.md').read_text()
    rc, _, err = ctglip('evaluate', run, '--data', root, '--split', 'valid', '--label-set', 'ct-rate-16', '--out', tmp_path/'c16',
                        '--n-boot', 0, '--protocol', 'ctclip')
    assert rc == 0, err[-2000:]
    c16 = json.loads((tmp_path/'c16'/'metrics.json').read_text())
    assert len(c16['labels']) == 16 and 'Medical material' not in c16['labels'] and c16['label_set'] == 'ct-rate-16'
    rc, _, err = ctglip('evaluate', run, '--data', root, '--out', tmp_path/'x', '--protocol', 'ctclip', '--threshold-split', 'train')
    assert rc == 2 and err.count('\n') == 1 and 'drop --threshold-split' in err
