"SynthCT: library, ground truth of the cases, report contract, dataset files, determinism and CLI."
import hashlib, json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctglip.anatomy import group_label_ids, organ_terms
from ctglip.core import CtglipError
from ctglip.data.synth import (abnormality_columns, check_case, generate, last_run, load_abnormalities, make_case,
                               synth_cli, volume_path)
from ctglip.data.synth_report import NEGATION, abnormality_patterns
from ctglip.data.volume import load_mask, load_volume


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


@pytest.mark.parametrize('name', list(load_abnormalities().name))
def test_each_abnormality(name):
    "Forced alone, each type is drawn inside its organ with the specified size and attenuation."
    for j in range(4):  # the organ may be out of view for one geometry
        c = make_case(200 + j, 3, findings=[name])
        if c.record['findings']: break
    assert [f['name'] for f in c.record['findings']][:1] == [name]
    assert check_case(c) == []


def test_random_cases_consistent():
    for i in range(6):
        c = make_case(i, 21)
        assert check_case(c) == []
        assert c.image.array.shape == c.mask.array.shape == c.lesions.array.shape
        assert set(np.unique(c.lesions.array)) - {0} <= {f['lesion_id'] for f in c.record['findings']}


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
    assert list(labels.columns) == abnormality_columns() and len(labels) == 10 and len(reports) == 10
    pats = abnormality_patterns(); abn = load_abnormalities().set_index('column')
    man = json.loads((ds/'manifest.json').read_text()); assert man['n'] == 10 and sum(man['splits'].values()) == 10
    for p in (ds/'cases').glob('*.json'):
        r = json.loads(p.read_text()); v = r['VolumeName']
        assert labels.loc[v].to_dict() == r['labels']
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
