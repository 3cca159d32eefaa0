"SynthCT: library, ground truth of the cases, acquisition and habitus, report contract, dataset files, determinism and CLI."
import hashlib, json, subprocess, sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctglip.anatomy import CONTRAST_PHASES, group_label_ids
from ctglip.core import CtglipError
from ctglip.synth.core import (FOV_KINDS, META_COLUMNS, SIZES, SynthConfig, abnormality_columns, check_case, generate, iter_cases,
                               last_run, load_abnormalities, load_base, make_case, render_anatomy, sample_geometry, synth_cli, volume_path)
from ctglip.synth.report import NEGATION, NOT_IMAGED, abnormality_patterns
from ctglip.data.volume import load_mask, load_volume

WHOLE = SynthConfig(fov_kinds=(('whole', 1.),))  # every organ in view


@pytest.fixture(scope='module')
def base(): return load_base()


def test_library():
    abn = load_abnormalities()
    assert abn.name.is_unique and abn.column.is_unique
    organs = {o for os_ in abn.organs for o in os_}
    assert len(abn) >= 16 and len(organs) >= 7
    for o in organs: assert group_label_ids(o), o
    pats = abnormality_patterns()
    for r in abn.itertuples():  # no phrase of one type matches another type
        for s in [r.name] + r.synonym_list:
            assert not [n for n, p in pats.items() if n != r.name and p.search(s)], s


def test_report_writer_does_not_import_generator():
    code = "import sys, ctglip.synth.report; assert 'ctglip.synth.core' not in sys.modules"
    subprocess.run([sys.executable, '-c', code], check=True)


@pytest.mark.parametrize('name', list(load_abnormalities().name))
def test_each_abnormality(name):
    "Forced alone, each type is drawn inside its organ with the specified size and attenuation."
    for j in range(4):  # the organ may be too small in one geometry
        c = make_case(200 + j, 3, WHOLE, findings=[name])
        if c.record['findings']: break
    assert [f['name'] for f in c.record['findings']][:1] == [name]
    assert check_case(c) == []


def test_random_cases_consistent():
    for i in range(6):
        c = make_case(i, 21)
        assert check_case(c) == []
        assert c.image.array.shape == c.mask.array.shape == c.lesions.array.shape
        assert np.array_equal(c.image.affine, c.mask.affine) and np.array_equal(c.image.affine, c.lesions.affine)
        assert set(np.unique(c.lesions.array)) - {0} <= {f['lesion_id'] for f in c.record['findings']}
        vis = {g for g, o in c.record['organs'].items() if o['visible']}
        assert {f['organ'] for f in c.record['findings']} <= vis


@pytest.mark.parametrize('size', list(SIZES))
def test_acquisition_ranges(base, size):
    "Every drawn acquisition lies in its range: field of view, slices, pixel spacing, habitus."
    cfg = replace(SynthConfig(), size=size); sz = SIZES[size]; kinds = set()
    for i in range(150):
        g = sample_geometry(base, cfg, np.random.default_rng([0, i])); sp = np.diag(g['affine'])[:3]
        assert g['kind'] in FOV_KINDS; kinds.add(g['kind'])
        assert 1 <= g['slice_mm'] <= 5 and g['slice_mm'] in [t for t, _ in sz['thickness']]
        assert sp[2] == max(g['slice_mm'], sz['min_step'])
        assert g['shape'][:2] == (sz['matrix'],)*2 and 8 <= g['shape'][2] <= sz['max_slices']
        assert 0.6*base.body_extent[0] / sz['matrix'] < sp[0] < 1.8*base.body_extent[0] / sz['matrix']
        assert cfg.sat_scale[0] <= g['habitus']['sat_scale'] <= cfg.sat_scale[1] and abs(g['habitus']['vat_mm']) <= cfg.vat_mm
        assert all(0 <= c <= 1 for c in g['cut'])
    assert kinds == set(FOV_KINDS)


def test_phases_and_noise():
    cfg = replace(SynthConfig(), size='tiny'); sz = SIZES['tiny']
    for c in iter_cases(6, seed=8, cfg=cfg):
        r = c.record
        assert r['phase'] in CONTRAST_PHASES
        lo, hi = (n * (3 / r['slice_mm'])**0.5 for n in sz['noise'])
        assert lo - 0.05 <= r['noise_hu'] <= hi + 0.05


def test_phase_enhancement():
    "One geometry in every phase: the aorta is brightest in the arterial phase, the kidney cortex leads the medulla there."
    cases = {p: make_case(2, 0, replace(WHOLE, phases=((p, 1.),)), findings=[]) for p in CONTRAST_PHASES}
    mean = lambda c, ids: float(c.image.array[np.isin(c.mask.array, ids)].mean())
    aorta = {p: mean(c, [52]) for p, c in cases.items()}
    assert aorta['arterial'] > aorta['portal'] > aorta['native'] and aorta['delayed'] > aorta['native'] + 30
    liver = {p: mean(c, [5]) for p, c in cases.items()}
    assert liver['portal'] - liver['native'] > 40 and liver['arterial'] < liver['portal']
    assert mean(cases['portal'], [64]) > mean(cases['arterial'], [64])  # portal vein
    from scipy import ndimage
    c = cases['arterial']; kid = np.isin(c.mask.array, [2, 3]); d = ndimage.distance_transform_edt(kid, sampling=c.record['spacing'])
    assert c.image.array[kid & (d <= 6)].mean() > c.image.array[kid & (d > 10)].mean() + 30


def test_fat_layer(base):
    "A fuller subcutaneous layer widens the body outline; muscle, bone and organs keep their size."
    g = sample_geometry(base, WHOLE, np.random.default_rng([0, 0]))
    out = {s: render_anatomy(base, dict(g, habitus=dict(sat_scale=s, vat_mm=0.))) for s in (0.5, 1.0, 2.0)}
    body = {s: int((im > -500).sum()) for s, (im, _) in out.items()}
    lean = {s: int((im > -40).sum()) for s, (im, _) in out.items()}
    assert body[0.5] < 0.95*body[1.0] and body[2.0] > 1.1*body[1.0]
    assert abs(lean[2.0] / lean[0.5] - 1) < 0.03
    assert len({int((lab == 5).sum()) for _, lab in out.values()}) == 1


def test_visceral_fat_keeps_organs(base):
    g = sample_geometry(base, WHOLE, np.random.default_rng([0, 1]))
    (a, la), (b, lb) = (render_anatomy(base, dict(g, habitus=dict(sat_scale=1., vat_mm=v))) for v in (-8., 8.))
    assert np.array_equal(la, lb)
    assert np.array_equal(a[la > 0], b[la > 0])  # labelled voxels untouched
    fat = lambda im, lab: int(((im < -40) & (im > -250) & (lab == 0)).sum())
    assert fat(b, lb) > fat(a, la)


def test_fields_of_view():
    "An upper-abdominal slab shows the kidneys but not the bladder; a pelvic scan the reverse; reports follow."
    up, pel = (make_case(1, 0, SynthConfig(fov_kinds=((k, 1.),), style='sectioned')) for k in ('upper', 'pelvis'))
    vis = lambda c: {g for g, o in c.record['organs'].items() if o['visible']}
    assert {'liver', 'kidney_left', 'kidney_right'} <= vis(up) and 'urinary_bladder' not in vis(up)
    assert 'urinary_bladder' in vis(pel) and not {'liver', 'kidney_left', 'kidney_right', 'spleen'} & vis(pel)
    assert any(s['section'] == 'bladder' and s['text'] in NOT_IMAGED for s in up.record['report']['sentences'])
    assert 'upper abdomen' in up.record['report']['technique'] and 'pelvis' in pel.record['report']['technique']
    assert up.record['scan_mm'] <= 190 and up.record['fov_kind'] == 'upper'


def test_case_determinism():
    a, b = make_case(5, 3), make_case(5, 3)
    assert a.record == b.record
    for x, y in ((a.image, b.image), (a.mask, b.mask), (a.lesions, b.lesions)): assert np.array_equal(x.array, y.array)
    assert make_case(6, 3).record != a.record


def test_tiny(tmp_path):
    "The tiny size: a handful of small cases, in the same layout."
    generate(tmp_path/'t', n=5, seed=0, size='tiny', workers=1)
    recs = [json.loads(p.read_text()) for p in (tmp_path/'t'/'cases').glob('*.json')]
    assert len(recs) == 5 and all(r['shape'][:2] == [32, 32] and r['shape'][2] <= SIZES['tiny']['max_slices'] for r in recs)
    for r in recs:
        img = load_volume(volume_path(tmp_path/'t', r['split'], int(r['patient'].split('_')[1])))
        assert img.shape == tuple(r['shape']) and load_volume(tmp_path/'t'/'masks'/r['VolumeName']).shape == img.shape
    for c in iter_cases(4, seed=1, cfg=SynthConfig(size='tiny')): assert check_case(c) == []


def _tree(d):
    h = hashlib.sha256()
    for p in sorted(Path(d).rglob('*')):
        if p.is_file(): h.update(str(p.relative_to(d)).encode()); h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope='module')
def ds(tmp_path_factory):
    out = tmp_path_factory.mktemp('synth')/'a'
    generate(out, n=10, seed=4, workers=2, style='mixed')
    return out


def test_determinism(ds, tmp_path):
    generate(tmp_path/'b', n=10, seed=4, workers=1, style='mixed')
    assert _tree(ds) == _tree(tmp_path/'b')
    generate(tmp_path/'c', n=10, seed=5, workers=1, style='mixed')
    assert _tree(ds) != _tree(tmp_path/'c')


def test_dataset_files(ds):
    labels = pd.concat([pd.read_csv(p) for p in (ds/'multi_abnormality_labels').glob('*_predicted_labels.csv')]).set_index('VolumeName')
    reports = pd.concat([pd.read_csv(p, keep_default_na=False) for p in (ds/'radiology_text_reports').glob('*_reports.csv')]).set_index('VolumeName')
    meta = pd.concat([pd.read_csv(p) for p in (ds/'metadata').glob('*_metadata.csv')])
    assert list(meta.columns) == META_COLUMNS; meta = meta.set_index('VolumeName')
    assert list(labels.columns) == abnormality_columns() and len(labels) == 10 and len(reports) == 10
    pats = abnormality_patterns(); abn = load_abnormalities().set_index('column')
    man = json.loads((ds/'manifest.json').read_text()); assert man['n'] == 10 and sum(man['splits'].values()) == 10
    for p in (ds/'cases').glob('*.json'):
        r = json.loads(p.read_text()); v = r['VolumeName']
        assert labels.loc[v].to_dict() == r['labels']
        m = meta.loc[v]  # the acquisition, for stratified evaluation
        assert (m.ContrastPhase, m.FieldOfView, m.SliceThickness, m.ZSpacing, m.ReconstructionDiameter, m.ScanLength) == \
               (r['phase'], r['fov_kind'], r['slice_mm'], r['spacing'][2], r['fov_mm'], r['scan_mm'])
        assert (m.SubcutaneousFatScale, m.SubcutaneousFatMM, m.VisceralFatMM) == tuple(r['habitus'][k] for k in ('sat_scale', 'sat_mm', 'vat_mm'))
        text = reports.loc[v, 'Findings_EN'] + ' ' + reports.loc[v, 'Impressions_EN']
        for col, y in r['labels'].items():
            if y: assert pats[abn.loc[col, 'name']].search(text), (v, col)  # every positive appears in the text
        for s in r['report']['sentences']:
            for n in s['negated']:  # negated findings are never positive
                assert NEGATION.search(s['text']) and r['labels'][load_abnormalities().set_index('name').column[n]] == 0
        img = load_volume(volume_path(ds, r['split'], int(r['patient'].split('_')[1])))
        lab = load_mask(ds/'masks'/v, like=img); les = load_volume(ds/'lesions'/v)
        assert les.shape == img.shape and np.isin(lab.array[les.array > 0], [i for f in r['findings'] for i in group_label_ids(f['organ'])]).all()
        assert img.shape == tuple(r['shape']) and img.axcodes == 'RAS'
        np.testing.assert_allclose(load_volume(ds/'masks'/v).affine, img.affine, atol=1e-4)
        np.testing.assert_allclose(img.spacing, r['spacing'], atol=1e-3)


def test_patient_splits(ds):
    recs = [json.loads(p.read_text()) for p in (ds/'cases').glob('*.json')]
    assert {r['split'] for r in recs} == {'train', 'valid', 'test'}
    assert len({r['patient'] for r in recs}) == len(recs)


def test_cli(tmp_path, capsys):
    assert synth_cli([str(tmp_path/'o'), '--n', '2', '--seed', '1', '--workers', '1', '--style', 'sectioned']) == 0
    assert 'cases/s' in capsys.readouterr().out and last_run['n'] == 2
    with pytest.raises(CtglipError, match='already holds a dataset'): synth_cli([str(tmp_path/'o'), '--n', '2'])
    with pytest.raises(SystemExit): synth_cli([str(tmp_path/'p'), '--size', 'huge'])


def test_overwrite(tmp_path):
    generate(tmp_path/'o', n=4, seed=0, workers=1)
    generate(tmp_path/'o', n=3, seed=0, workers=1, overwrite=True)
    assert len(list((tmp_path/'o'/'cases').glob('*.json'))) == 3
    assert sum(len(pd.read_csv(p)) for p in (tmp_path/'o'/'radiology_text_reports').glob('*.csv')) == 3
    with pytest.raises(CtglipError, match='unknown size'): generate(tmp_path/'x', n=2, size='huge')
    with pytest.raises(CtglipError, match='contrast phase'): generate(tmp_path/'y', n=2, cfg=SynthConfig(phases=(('venous', 1.),)))
    with pytest.raises(CtglipError, match='field of view'): generate(tmp_path/'z', n=2, cfg=SynthConfig(fov_kinds=(('thorax', 1.),)))
