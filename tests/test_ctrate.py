"""CT-RATE-shaped data end to end: a small fixture in the CT-RATE layout (volumes from the embedded case, masks
mirroring `dataset/` or flat, reports, 18-label CSVs), training CT-GLIP and CLIP on it, and `ctglip evaluate`.
The images and reports do not match, so the numbers mean nothing: these tests check shapes, counts and the protocol."""
import contextlib, io, json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from ctglip.core import embedded_case

CTRATE_LABELS = ['Medical material', 'Arterial wall calcification', 'Cardiomegaly', 'Pericardial effusion',
                 'Coronary artery wall calcification', 'Hiatal hernia', 'Lymphadenopathy', 'Emphysema', 'Atelectasis',
                 'Lung nodule', 'Lung opacity', 'Pulmonary fibrotic sequela', 'Pleural effusion', 'Mosaic attenuation pattern',
                 'Peribronchial thickening', 'Consolidation', 'Bronchiectasis', 'Interlobular septal thickening']  # CT-RATE's CSV header
SENTENCES = ['A 12 mm cyst is seen in the liver.', 'The liver is normal in size.', 'The spleen is enlarged.', 'Both kidneys are normal.',
             'A small stone in the left kidney.', 'Nodule in the lower lobe of the left lung.', 'No pleural effusion.',
             'Atherosclerotic calcification of the abdominal aorta.', 'The gallbladder is unremarkable.', 'The pancreas is atrophic.']
# the fixture's studies: split -> [(patient, reconstructions)]
STUDIES = {'train': [(1, 2), (2, 1), (3, 1)], 'valid': [(1, 2), (2, 1), (3, 2), (4, 1), (5, 1), (6, 1)]}
SPLIT_DIR = {'train': 'train_fixed', 'valid': 'valid_fixed'}
REPORT_CSV = {'train': 'train_reports.csv', 'valid': 'validation_reports.csv'}
META_CSV = {'train': 'train_metadata.csv', 'valid': 'validation_metadata.csv'}


def _v2_to_v1_lut():
    from ctglip.anatomy import id2name, name2id
    lut, v1 = np.zeros(256, np.uint8), name2id('v1')
    for i, n in id2name('v2').items(): lut[i] = v1.get(n, 0)
    return lut


def make_ctrate(root, studies=STUDIES, seed:int=0, mask_version:str='v2', blank_header=False, blank_mask:bool=False,
                metadata:bool|None=None, no_report:dict|None=None,
                null_labels={'valid': {'Hiatal hernia': 0, 'Medical material': 1}},
                texts:pd.DataFrame|None=None) -> dict:
    """Write a CT-RATE-shaped dataset under `root` and return dict(root, volumes, labels={split: DataFrame}).

    Volumes `dataset/<split>_fixed/<split>_<p>/<split>_<p>_a/<split>_<p>_a_<r>.nii.gz` are the embedded 3 mm abdominal CT,
    cropped by a few voxels, sometimes flipped in x (the affine follows, so the anatomy stays in place) and shifted by a
    few mm; their organ masks lie in `masks/` mirroring `dataset/` (even volumes) or flat as `masks/<VolumeName>` (odd).
    Reports and labels are per study (identical across its reconstructions), labels random but fixed by `seed`;
    `null_labels` forces a label column to one value in a split (a label without negatives or positives).
    `mask_version='v1'` writes TotalSegmentator v1 ids. `blank_header=True` writes the volumes as CT-RATE v1 did: raw
    values (HU = RescaleSlope * raw + RescaleIntercept), no affine, the array in DICOM order (i along the row cosine,
    j along the column cosine, k along increasing slices, so that with ImageOrientationPatient [1,0,0,0,1,0] the
    LPS position of voxel (i, j, k) is ImagePositionPatient + (i sx, j sy, k sz)), plus `metadata/<split>_metadata.csv`
    with the geometry; their masks carry that fixed geometry (TotalSegmentator run on the fixed volume), or, with
    `blank_mask=True`, the same blank header (TotalSegmentator run on the v1 file). `blank_header` may also be a set of
    volume names (the others are written as v2). `metadata` (default: when any volume is v1) writes the metadata CSV
    for every volume, v2 ones included (in HU, yet `RescaleIntercept -1024`, as CT-RATE's metadata says).
    `no_report` maps volume names to 'missing' (no report row) or 'empty' (a row with empty text).
    `texts` (rows with `report_text` and the 18 label columns, e.g. CT-RATE's own from `../shared/data`) gives each study a
    real report and its labels instead of made-up sentences and random labels."""
    root = Path(root); case = embedded_case()
    ct, seg = nib.load(case['image']), nib.load(case['mask'])
    hu, lab, aff0 = np.asarray(ct.dataobj).astype(np.int16), np.asarray(seg.dataobj).astype(np.uint8), ct.affine
    if mask_version == 'v1': lab = _v2_to_v1_lut()[lab]
    rng = np.random.default_rng(seed); vols, labels, k, t = [], {}, 0, 0
    v1 = (lambda n: bool(blank_header)) if isinstance(blank_header, bool) else (lambda n: n in blank_header)
    metadata = bool(blank_header) if metadata is None else metadata; no_report = no_report or {}
    for split, st in studies.items():
        reports, rows, meta = [], [], []
        for p, n_rec in st:
            if texts is None:
                y = dict(zip(CTRATE_LABELS, rng.integers(0, 2, len(CTRATE_LABELS)).tolist()))
                y.update((null_labels or {}).get(split, {}))
                text = rng.choice(SENTENCES, 3, replace=False)
            else:
                row = texts.iloc[t % len(texts)]; t += 1
                y = {c: int(row[c]) for c in CTRATE_LABELS}; text = [row.report_text, '', '']
            for r in range(1, n_rec + 1):
                name = f'{split}_{p}_a_{r}.nii.gz'; rel = Path(SPLIT_DIR[split])/f'{split}_{p}'/f'{split}_{p}_a'
                lo, hi = rng.integers(0, 6, 3), rng.integers(0, 6, 3)
                sl = tuple(slice(a, n - b) for a, n, b in zip(lo, hu.shape, hi))
                img, msk = hu[sl], lab[sl]
                aff = aff0.copy(); aff[:3, 3] += aff0[:3, :3] @ lo + rng.uniform(-5, 5, 3)
                blank = v1(name)
                if rng.random() < .5 and not blank:   # flip x: voxel i holds what was at nx-1-i
                    img, msk = img[::-1], msk[::-1]; aff = aff @ np.array([[-1, 0, 0, img.shape[0] - 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
                if blank:   # DICOM order: LPS axes along i, j (flip x and y of the RAS-ordered array)
                    img, msk = img[::-1, ::-1], msk[::-1, ::-1]
                    aff = aff @ np.array([[-1, 0, 0, img.shape[0] - 1], [0, -1, 0, img.shape[1] - 1], [0, 0, 1, 0], [0, 0, 0, 1]])
                    vol = nib.Nifti1Image((np.ascontiguousarray(img).astype(np.int32) + 1024).astype(np.int16), None)
                else: vol = nib.Nifti1Image(np.ascontiguousarray(img), aff)
                sp = np.sqrt((aff[:3, :3]**2).sum(0)); pos = aff[:3, 3] * [-1, -1, 1]   # RAS -> LPS (a v1 file's geometry; a v2 file's header wins)
                meta.append(dict(VolumeName=name, XYSpacing=f'[{sp[0]:g}, {sp[1]:g}]', ZSpacing=f'{sp[2]:g}', RescaleSlope=1,
                                 RescaleIntercept=-1024, ImagePositionPatient=f'[{pos[0]:.4f}, {pos[1]:.4f}, {pos[2]:.4f}]',
                                 ImageOrientationPatient='[1, 0, 0, 0, 1, 0]'))
                path = root/'dataset'/rel/name; path.parent.mkdir(parents=True, exist_ok=True); nib.save(vol, path)
                mpath = root/'masks'/(rel if k % 2 == 0 else '')/name; mpath.parent.mkdir(parents=True, exist_ok=True)
                nib.save(nib.Nifti1Image(np.ascontiguousarray(msk), None if blank and blank_mask else aff), mpath)
                if no_report.get(name) != 'missing':
                    empty = no_report.get(name) == 'empty'
                    reports.append(dict(VolumeName=name, Findings_EN='' if empty else ' '.join(text[:2]).strip(), Impressions_EN='' if empty else text[2]))
                rows.append(dict(VolumeName=name, **y)); vols.append(path); k += 1
        (root/'radiology_text_reports').mkdir(parents=True, exist_ok=True); (root/'multi_abnormality_labels').mkdir(exist_ok=True)
        pd.DataFrame(reports).to_csv(root/'radiology_text_reports'/REPORT_CSV[split], index=False)
        labels[split] = pd.DataFrame(rows)[['VolumeName'] + CTRATE_LABELS]
        labels[split].to_csv(root/'multi_abnormality_labels'/f'{split}_predicted_labels.csv', index=False)
        if metadata:
            (root/'metadata').mkdir(exist_ok=True); pd.DataFrame(meta).to_csv(root/'metadata'/META_CSV[split], index=False)
    return dict(root=root, volumes=vols, labels=labels)


def ctglip(*args) -> tuple:
    "Run the `ctglip` command in this process: (exit status, stdout, stderr)."
    from ctglip.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): rc = main([str(a) for a in args])
    return rc, out.getvalue(), err.getvalue()


V1 = {'train_2_a_1.nii.gz', 'valid_1_a_2.nii.gz', 'valid_3_a_1.nii.gz', 'valid_5_a_1.nii.gz'}   # written as CT-RATE v1 (blank header, stored values)
NO_REPORT = {'valid_4_a_1.nii.gz': 'missing', 'valid_5_a_1.nii.gz': 'empty'}


@pytest.fixture(scope='module')
def ctrate(tmp_path_factory):
    "v1 and v2 volumes mixed (metadata CSV for all), two validation scans without a report."
    return make_ctrate(tmp_path_factory.mktemp('ctrate')/'CT-RATE', blank_header=V1, no_report=NO_REPORT)


@pytest.fixture(scope='module')
def runs(ctrate):
    "A CT-GLIP and a CLIP run of 3 tiny steps on the fixture (one work folder: pairs and cache built once)."
    base = ctrate['root'].parent; work = base/'work'; res = dict(work=work)
    # the fixture's abdominal CT cuts the lungs and the aorta (and so does the tiny 32^3 crop): keep truncated and mostly cropped
    # organs paired so that CT-RATE's lung and aorta labels have units to ground to
    for name, extra in (('ctglip', []), ('clip', ['train.model=clip'])):
        rc, out, err = ctglip('train', '--preset', 'tiny', '--data', ctrate['root'], '--work', work, '--out', base/name, 'steps=3',
                              'data.keep_truncated=true', 'data.min_organ_fraction=0.05', *extra)
        assert rc == 0, err[-2000:]
        res[name] = base/name
    return res


def _evaluate(ctrate, runs, model, out, *extra):
    rc, stdout, err = ctglip('evaluate', runs[model], '--data', ctrate['root'], '--work', runs['work'], '--split', 'valid',
                             '--label-set', 'ct-rate', '--out', out, '--n-boot', 50, *extra)
    assert rc == 0, err[-2000:]
    return json.loads((Path(out)/'metrics.json').read_text()), pd.read_csv(Path(out)/'scores.csv', index_col=0), stdout


def test_fixture_is_ctrate_shaped(ctrate):
    from ctglip.data.layout import find_scans
    scans = find_scans(ctrate['root'])
    test = {s.split: sum(t.split == s.split for t in scans) for s in scans}
    assert test == {'train': 4, 'valid': 8}
    assert all(s.mask and s.meta for s in scans)
    assert {s.scan_id + '.nii.gz' for s in scans if not s.has_report} == set(NO_REPORT)
    assert {s.scan_id + '.nii.gz' for s in scans if nib.load(s.image).header['sform_code'] == 0} == V1
    assert {Path(s.mask).parent.name == 'masks' for s in scans} == {True, False}   # flat masks and a tree mirroring dataset/
    assert list(ctrate['labels']['valid'].columns[1:]) == CTRATE_LABELS


def test_evaluate_ctglip_and_clip(ctrate, runs, tmp_path):
    from ctglip.data.layout import study_id
    from ctglip.data.labels import label_names
    csv = ctrate['labels']['valid'].assign(scan_id=lambda d: d.VolumeName.str[:-7]).set_index('scan_id')
    got = {}
    for model in ('ctglip', 'clip'):
        res, scores, stdout = _evaluate(ctrate, runs, model, tmp_path/model)
        got[model] = res, scores
        assert list(res) == ['labels', 'macro_auc', 'macro_auc_ci', 'macro_f1', 'macro_f1_ci', 'macro_f1_weighted', 'macro_accuracy',
                             'macro_precision', 'macro_recall', 'n_labels_macro', 'n_scans', 'n_studies', 'n_calibration', 'protocol',
                             'model', 'run', 'split', 'label_set']
        assert res['n_studies'] == len({study_id(s) for s in scores.index[scores.part == 'scored']})
        assert (res['model'], res['split'], res['label_set']) == (model, 'valid', 'ct-rate')
        assert list(res['labels']) == label_names('ct-rate') == CTRATE_LABELS
        scored, cal = scores.index[scores.part == 'scored'], scores.index[scores.part == 'calibration']
        assert (res['n_scans'], res['n_calibration']) == (len(scored), len(cal)) and len(scored) + len(cal) == 8
        assert not {study_id(s) for s in scored} & {study_id(s) for s in cal}   # whole studies on one side
        assert {'valid_4_a_1', 'valid_5_a_1'} <= set(scores.index)              # scans without a report are scored too
        assert res['protocol']['not_scored'] == {} and res['protocol']['level'] == ('organ' if model == 'ctglip' else 'scan')
        for name, m in res['labels'].items():
            y = csv.loc[scored, name]
            assert (m['n_pos'], m['n']) == (int(y.sum()), len(scored)), name
            both = 0 < y.sum() < len(y)
            assert (m['auc'] is None) == (not both) and (m['auc_ci'] is None) == (not both), name
            if both: assert 0 <= m['auc'] <= 1 and m['auc_ci'][0] <= m['auc'] <= m['auc_ci'][1]
            assert set(m) >= {'auc', 'auc_ci', 'f1', 'accuracy', 'precision', 'recall', 'n_pos', 'n', 'threshold'}
        assert res['labels']['Hiatal hernia']['auc'] is None and res['labels']['Medical material']['auc'] is None   # no positives / no negatives
        aucs = [m['auc'] for m in res['labels'].values() if m['auc'] is not None]
        assert res['n_labels_macro'] == len(aucs) and abs(res['macro_auc'] - np.mean(aucs)) < 1e-12
        md = (tmp_path/model/'metrics.md').read_text().splitlines()
        assert md[2].startswith('| Abnormality | AUC |') and len(md) == 4 + 18 + 1 and md[-1].startswith('| **Mean')
        assert pd.read_csv(tmp_path/model/'metrics.csv').label.tolist() == CTRATE_LABELS + ['macro']
        assert 'macro AUC' in stdout
    (g, sg), (c, sc) = got['ctglip'], got['clip']
    assert sg.index.tolist() == sc.index.tolist() and (sg.part == sc.part).all()   # both models on the same scans and parts
    assert all(m['n_grounded'] == 0 for m in c['labels'].values())
    assert g['labels']['Medical material']['n_grounded'] == g['labels']['Lymphadenopathy']['n_grounded'] == 0   # no pairing unit
    assert g['labels']['Arterial wall calcification']['units'] == ['aorta'] and g['labels']['Arterial wall calcification']['n_grounded'] > 0
    assert g['labels']['Emphysema']['units'] == ['lung'] and g['labels']['Emphysema']['n_grounded'] < g['n_scans']   # lungs outside the crop: scan level


def test_threshold_split_scores_the_whole_split(ctrate, runs, tmp_path):
    res, scores, _ = _evaluate(ctrate, runs, 'ctglip', tmp_path/'o', '--threshold-split', 'train')
    valid = ctrate['labels']['valid']
    assert (res['n_scans'], res['n_calibration']) == (8, 4)
    assert {k: m['n_pos'] for k, m in res['labels'].items()} == valid[CTRATE_LABELS].sum().to_dict()
    assert set(scores.index[scores.part == 'calibration']) == {f"train_{p}_a_{r}" for p, n in STUDIES['train'] for r in range(1, n + 1)}
    assert res['protocol']['threshold']['on'] == 'split train'


def test_bad_labels_are_one_line_errors(ctrate, runs, tmp_path):
    bad = ctrate['labels']['valid'].copy(); bad.loc[3, 'Emphysema'] = 2; bad.to_csv(tmp_path/'bad.csv', index=False)
    rc, _, err = ctglip('evaluate', runs['ctglip'], '--data', ctrate['root'], '--labels', tmp_path/'bad.csv', '--out', tmp_path/'o')
    assert rc == 2 and err.count('\n') == 1 and "bad.csv: row 5, column 'Emphysema': value 2 is not 0 or 1" in err
    rc, _, err = ctglip('evaluate', runs['ctglip'], '--data', ctrate['root'], '--work', runs['work'], '--split', 'test', '--out', tmp_path/'o')
    assert rc == 2 and err.count('\n') == 1 and "no split 'test' in the data; its splits: train, valid" in err


def test_v1_ids_and_blank_headers(tmp_path):
    "The fixture's variants: v1 mask ids; raw values without a header, geometry in metadata."
    import ast
    from ctglip.anatomy import id2name
    st = {'valid': [(1, 1), (2, 1), (3, 1)]}
    d = make_ctrate(tmp_path/'v1', studies=st, mask_version='v1', blank_header=True)
    ref = make_ctrate(tmp_path/'v2', studies=st)   # the same seed: the same crops and shifts, a proper header
    meta = pd.read_csv(d['root']/'metadata'/'validation_metadata.csv')
    assert {'VolumeName', 'XYSpacing', 'ZSpacing', 'RescaleSlope', 'RescaleIntercept', 'ImagePositionPatient', 'ImageOrientationPatient'} <= set(meta.columns)
    v1 = set(id2name('v1')); g = np.random.default_rng(0)
    for path, rpath, row in zip(d['volumes'], ref['volumes'], meta.itertuples()):
        img, r = nib.load(path), nib.load(rpath)
        assert path.name == row.VolumeName and img.header['sform_code'] == img.header['qform_code'] == 0
        sx, sy = ast.literal_eval(row.XYSpacing); pos = ast.literal_eval(row.ImagePositionPatient)
        aff = np.diag([-sx, -sy, row.ZSpacing, 1.]); aff[:3, 3] = [-pos[0], -pos[1], pos[2]]   # DICOM LPS geometry -> RAS affine
        hu = row.RescaleSlope * np.asarray(img.dataobj) + row.RescaleIntercept
        ijk = np.stack([g.integers(0, n, 500) for n in hu.shape], 1)
        k = np.linalg.solve(r.affine, (aff @ np.c_[ijk, np.ones(500)].T))[:3].T   # the same world points in the reference volume
        assert np.abs(k - np.rint(k)).max() < 1e-3; k = np.rint(k).astype(int)
        assert (hu[tuple(ijk.T)] == np.asarray(r.dataobj)[tuple(k.T)]).all()
        rel = path.relative_to(d['root']/'dataset'); mp = d['root']/'masks'/rel
        m = nib.load(mp if mp.exists() else d['root']/'masks'/path.name)
        assert np.allclose(m.affine, aff, atol=1e-3) and set(np.unique(np.asarray(m.dataobj))) - {0} <= v1
        ml = np.asarray(m.dataobj)[tuple(ijk.T)]; rm = nib.load(ref['root']/'masks'/(rel if mp.exists() else path.name))
        assert (ml == _v2_to_v1_lut()[np.asarray(rm.dataobj)[tuple(k.T)]]).all()


def test_v1_and_v2_cache_alike(tmp_path):
    """The same scans written as CT-RATE v1 (blank headers on volumes and masks, stored values) and as v2 (headers, HU, and a
    metadata row that still says RescaleIntercept -1024) give the same cache: geometry from the metadata, HU applied once."""
    from ctglip.data.layout import find_scans
    from ctglip.data.cache import build_cache, read_pair
    st, sp, win = {'valid': [(1, 1), (2, 1), (3, 1)]}, (5., 4.5, 5.), (-2000., 3000.)   # no nearest-neighbour ties from 3 mm
    d1 = make_ctrate(tmp_path/'v1', studies=st, blank_header=True, blank_mask=True)
    d2 = make_ctrate(tmp_path/'v2', studies=st, metadata=True)
    s1, s2 = find_scans(d1['root']), find_scans(d2['root'])
    assert [s.scan_id for s in s1] == [s.scan_id for s in s2] and all(s.meta['RescaleIntercept'] == '-1024' for s in s1 + s2)
    assert all(nib.load(s.mask).header['sform_code'] == 0 for s in s1)
    m1, m2 = build_cache(s1, tmp_path/'c1', sp, win, workers=1), build_cache(s2, tmp_path/'c2', sp, win, workers=1)
    assert m1['bad'] == m2['bad'] == {} and len(m1['scans']) == len(m2['scans']) == 3
    for s in s2:
        (h1, l1), (h2, l2) = ((np.load(c/'scans'/s.scan_id/'image.npy'), np.load(c/'scans'/s.scan_id/'labels.npy')) for c in (tmp_path/'c1', tmp_path/'c2'))
        assert np.array_equal(l1, l2) and np.abs(h1.astype(int) - h2).max() <= 1          # v1 rescaled once, v2 kept
        hu = read_pair(s.image, s.mask, sp, win)[0]                                         # the v2 file as stored, no metadata
        assert np.abs(hu.astype(int) - h2).max() <= 1 and h2.min() < -1000
        assert np.allclose(m1['scans'][s.scan_id]['affine'], m2['scans'][s.scan_id]['affine'], atol=1e-3)
    bad = s1[0]; m = nib.load(bad.mask)
    nib.save(nib.Nifti1Image(np.asarray(m.dataobj)[:, :, :-2].copy(), None), bad.mask)     # a blank mask of another shape
    why = build_cache(s1, tmp_path/'c3', sp, win, workers=1)['bad'][bad.scan_id]
    assert why.startswith(bad.mask) and f"its volume {bad.image} has shape" in why and 'blank NIfTI header' in why


def test_predict_reads_a_v1_volume_with_its_metadata(ctrate, runs, tmp_path):
    from ctglip.data.layout import find_mask
    v = next(p for p in ctrate['volumes'] if p.name in V1 and p.name.startswith('valid'))
    mask, meta = find_mask(v, ctrate['root']), ctrate['root']/'metadata'/'validation_metadata.csv'
    rc, out, err = ctglip('predict', runs['ctglip'], v, mask, '--metadata', meta, '--out', tmp_path/'p.json', '--device', 'cpu')
    assert rc == 0, err[-2000:]
    assert json.loads((tmp_path/'p.json').read_text())['organs']
    rc, _, err = ctglip('predict', runs['ctglip'], v, mask, '--device', 'cpu')
    assert rc == 2 and f"{v}: blank header" in err


def test_real_ctrate_reports_end_to_end(tmp_path):
    "With the CT-RATE report text in ../shared/data: the fixture's studies carry real reports and their own 18 labels."
    from ctglip.core import shared_data_dir
    from ctglip.data.layout import read_pairs
    d = shared_data_dir(); f = d/'ct_rate_text'/'ctclip_text_classifier'/'train.csv' if d else None
    if not (f and f.is_file()): pytest.skip('CT-RATE report text not in ../shared/data')
    texts = pd.read_csv(f).dropna(subset=['report_text']).sample(9, random_state=0).reset_index(drop=True)
    ds = make_ctrate(tmp_path/'CT-RATE', texts=texts); work, run = tmp_path/'work', tmp_path/'run'
    rc, _, err = ctglip('train', '--preset', 'tiny', '--data', ds['root'], '--work', work, '--out', run, 'steps=2',
                        'data.keep_truncated=true', 'data.min_organ_fraction=0.05')
    assert rc == 0, err[-2000:]
    pairs = read_pairs(work/'pairs.jsonl')
    assert any(r['findings'] for r in pairs) and any(r['text'] in ' '.join(texts.report_text) for r in pairs if not r['is_normal'])
    res, scores, _ = _evaluate(ds, dict(work=work, ctglip=run), 'ctglip', tmp_path/'eval')
    scored = scores.index[scores.part == 'scored']; y = ds['labels']['valid'].assign(s=lambda v: v.VolumeName.str[:-7]).set_index('s').loc[scored]
    assert {k: m['n_pos'] for k, m in res['labels'].items()} == {k: int(y[k].sum()) for k in CTRATE_LABELS}


def test_results_explorer_reads_the_evaluation(ctrate, runs, tmp_path):
    "`ctglip evaluate`'s wide scores.csv opens in the results explorer as the long table of its scored scans."
    from ctglip.browse.results import read_scores, roc_figure, SCAN
    res, scores, _ = _evaluate(ctrate, runs, 'ctglip', tmp_path/'o')
    S = read_scores(tmp_path/'o')
    assert set(S.abnormality) == set(scores.columns) - {'part'} and set(S.organ) == {SCAN} and set(S.model) == {'ctglip'}
    assert len(S) == res['n_scans'] * S.abnormality.nunique()
    both = [a for a, g in S.groupby('abnormality') if g.y.nunique() == 2]
    assert both and roc_figure(S, SCAN, both[0]).data[1].name.startswith('ctglip (AUC')
