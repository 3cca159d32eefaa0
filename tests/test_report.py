"""Report parsing, labels, pairing, dictionary and public loaders: bad input and the command line."""
import csv, json, subprocess, sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctglip.core import CtglipError, embedded_case
from ctglip.data.report import parse_report, find_findings, split_sections
from ctglip.data.labels import text_labels, label_names, labels_frame
from ctglip.data.pairing import make_pairs, mask_organs, read_pairs
from ctglip.data.dictionary import AbnormalityDictionary, load_dictionary, build_dictionary
from ctglip.data.public import load_ctrate_labels, ctrate_affine, load_organ_split
from ctglip.data.layout import read_reports
from ctglip.data.volume import load_mask

ROOT = Path(__file__).resolve().parent.parent
EXE = Path(sys.executable).parent/'ctglip'


def run(*args):
    return subprocess.run([str(EXE), *map(str, args)], capture_output=True, text=True, cwd=ROOT)


@pytest.fixture(scope='module')
def organs():
    return mask_organs(load_mask(embedded_case()['mask']))


# --- report parsing: bad input -------------------------------------------------------------
@pytest.mark.parametrize('text', ['', None, float('nan'), '   ', '""', '.', ';;;'])
def test_empty_reports_parse_to_nothing(text):
    r = parse_report(text)
    assert r.sentences == [] and r.findings() == {} and 'Report: 0 sentences' in repr(r)


def test_no_findings_section_reads_impression():
    r = parse_report('IMPRESSION: 1. Cholelithiasis. 2. No hydronephrosis.')
    assert not r.has_findings_section
    assert r.findings() == {'gallbladder': ['gallstone']}


def test_unknown_sections_are_kept_and_read():
    r = parse_report('Clinical history: evaluate nodule. Odd part: Emphysema. Findings: Normal.')
    names = [n for n, _ in r.sections]
    assert names == ['history', 'odd part', 'findings']
    assert r.findings() == {'lung': ['emphysema']}  # the history sentence asks about a nodule: not a finding


def test_non_ascii_text():
    r = parse_report('Épanchement: pleural effusion \u2014 right\u00a0side; “cardiomegaly” 12\u00d78 mm. 肺结节')
    assert r.sentences[0].findings == ['pleural effusion']
    assert 'cardiomegaly' in r.findings()['heart']


def test_negation_scope_coordination_and_post():
    names = lambda s: {(m.name, m.negated) for m in find_findings(s)}
    assert names('No pleural or pericardial effusion.') == {('pleural effusion', True), ('pericardial effusion', True)}
    assert names('Pleural effusion and pneumothorax were not detected.') == {('pleural effusion', True), ('pneumothorax', True)}
    assert names('A nodule is seen and no pleural effusion.') == {('lung nodule', False), ('pleural effusion', True)}
    assert names('The nodule has resolved.') == {('lung nodule', True)}
    assert [m.uncertain for m in find_findings('Possible pneumonia.')] == [True]


def test_sectioned_report_assigns_heading_organ():
    r = parse_report('SPLEEN: Enlarged, 15 cm. KIDNEYS AND URETERS: Simple cyst on the left.')
    assert r.sentences[0].groups == ['spleen']
    assert r.findings() == {'spleen': ['splenomegaly'], 'kidney_left': ['renal cyst']}


def test_sentence_organs_key_dicts():
    rep = parse_report('The liver contains a 2 cm cyst. The spleen is normal.')
    by = {}
    for s in rep.sentences:   # what `ctglip predict --report` does with them: organ names as dict keys
        for o in s.organs: by.setdefault(o, []).append(s.text)
    assert by == {'liver': ['The liver contains a 2 cm cyst.'], 'spleen': ['The spleen is normal.']}
    assert rep.organ_texts(['liver', 'kidney_left']) == {'liver': ['The liver contains a 2 cm cyst.'], 'kidney_left': []}
    assert rep.sentences[0].organ_mentions[0].name == 'liver'


# --- labels ---------------------------------------------------------------------------------
def test_labels_negative_report_is_all_zero():
    t = ('The trachea and the main bronchi are patent. No pleural or pericardial effusion. No enlarged lymph nodes. '
         'No nodular or infiltrative lesion in the lungs. Heart size is normal.')
    assert sum(text_labels(t).values()) == 0


def test_labels_frame_rejects_missing_columns():
    with pytest.raises(CtglipError, match='not found'):
        labels_frame(pd.DataFrame(dict(a=[1])), 'text', 'a')


def test_labels_cli(tmp_path):
    pd.DataFrame(dict(VolumeName=['x_1'], Findings_EN=['Emphysema. Hiatal hernia.'], Impressions_EN=[''])).to_csv(tmp_path/'r.csv', index=False)
    r = run('labels', tmp_path/'r.csv', '--out', tmp_path/'l.csv')
    assert r.returncode == 0, r.stderr
    row = next(csv.DictReader(open(tmp_path/'l.csv')))
    assert list(row) == ['VolumeName'] + label_names() and row['Emphysema'] == '1' and row['Hiatal hernia'] == '1'
    bad = run('labels', tmp_path/'r.csv', '--text-col', 'nope', '--out', tmp_path/'x.csv')
    assert bad.returncode == 2 and bad.stderr.count('\n') == 1 and 'r.csv' in bad.stderr


# --- pairing --------------------------------------------------------------------------------
def test_pair_records_follow_the_contract(organs):
    pairs = make_pairs('s1', organs, 'Gallstones. Right renal cyst. Normal pancreas.', split='train')
    for p in pairs:
        assert set(p) == {'scan_id', 'organ', 'label_ids', 'text', 'is_normal', 'findings', 'split'}
        assert p['is_normal'] == (p['findings'] == [])
    assert {p['organ'] for p in pairs if not p['is_normal']} == {'gallbladder', 'kidney_right'}


def test_organ_absent_from_mask_is_counted_not_paired(organs):
    st = Counter()
    pairs = make_pairs('s2', organs, 'Thyroid nodule. Brain lesion.', unmentioned='skip', stats=st)
    assert pairs == [] and st['absent_mentioned'] == 2


def test_truncated_organs_are_not_paired(organs):
    pairs = make_pairs('s3', organs, 'Hepatic steatosis.')
    assert 'liver' not in {p['organ'] for p in pairs}  # the liver dome touches the top slice


def test_pairs_cli_bad_folder(tmp_path):
    r = run('pairs', tmp_path, '--out', tmp_path/'p.jsonl')
    assert r.returncode == 2 and 'not a dataset folder' in r.stderr and r.stderr.count('\n') == 1


def test_read_pairs_rejects_bad_json(tmp_path):
    (tmp_path/'p.jsonl').write_text('{"a": 1}\nnot json\n')
    with pytest.raises(CtglipError, match='line 2'):
        read_pairs(tmp_path/'p.jsonl')


# --- dictionary -----------------------------------------------------------------------------
def test_negatives_exclude_findings_and_synonyms():
    ad = AbnormalityDictionary.load('seed'); rng = np.random.default_rng(0)
    for _ in range(20):
        neg = ad.sample_negatives('lung', ['emphysema'], 5, rng)
        assert len(neg) == 5 and not {'emphysema', 'bulla', 'bullae'} & set(neg)
    assert ad.sample_negatives('liver', [], 0, rng) == []


def test_shipped_dictionaries_are_not_ctrate_mined():
    for name in ('seed', 'synthct'):
        d = load_dictionary(name)
        assert set(d.source) <= {'seed', 'mined', 'seed+mined'}
    assert not [p for p in (ROOT/'ctglip/assets').iterdir() if 'dictionary' in p.name and 'ctrate' in p.name.lower()]


def test_dictionary_cli(tmp_path):
    (tmp_path/'p.jsonl').write_text(json.dumps(dict(scan_id='a', organ='liver', label_ids=[5], text='Fatty liver.',
                                                    is_normal=False, findings=['hepatic steatosis'], split='train')) + '\n')
    r = run('dictionary', tmp_path/'p.jsonl', '--out', tmp_path/'d.csv')
    assert r.returncode == 0, r.stderr
    d = pd.read_csv(tmp_path/'d.csv')
    assert d.set_index(['organ', 'name']).loc[('liver', 'hepatic steatosis'), 'count'] == 1


def test_dictionary_mines_the_training_split_only(tmp_path):
    rec = lambda split, organ, finding: dict(scan_id=split, organ=organ, label_ids=[5], text=finding, is_normal=False,
                                             findings=[finding], split=split)
    pairs = [rec('train', 'liver', 'hepatic steatosis'), rec('valid', 'spleen', 'splenic infarct'), rec('test', 'liver', 'hepatic abscess')]
    (tmp_path/'p.jsonl').write_text(''.join(json.dumps(p) + '\n' for p in pairs))
    keys = lambda d: set(zip(d.organ, d.name))
    assert ('liver', 'hepatic abscess') not in keys(build_dictionary(pairs)) and ('spleen', 'splenic infarct') not in keys(build_dictionary(pairs))
    assert ('liver', 'hepatic abscess') in keys(build_dictionary(pairs, splits=None))
    r = run('dictionary', tmp_path/'p.jsonl', '--out', tmp_path/'d.csv')
    assert r.returncode == 0, r.stderr
    d = pd.read_csv(tmp_path/'d.csv')
    assert ('liver', 'hepatic abscess') not in keys(d) and d.set_index(['organ', 'name']).loc[('liver', 'hepatic steatosis'), 'count'] == 1
    r = run('dictionary', tmp_path/'p.jsonl', '--out', tmp_path/'all.csv', '--splits', 'all')
    assert r.returncode == 0 and ('liver', 'hepatic abscess') in keys(pd.read_csv(tmp_path/'all.csv'))


# --- public loaders -------------------------------------------------------------------------
def test_ctrate_loaders_reject_bad_files(tmp_path):
    (tmp_path/'r.csv').write_text('Name,Text\na,b\n')
    with pytest.raises(CtglipError, match='VolumeName'):
        read_reports(tmp_path/'r.csv')
    (tmp_path/'l.csv').write_text('VolumeName,Emphysema\na,1\n')
    with pytest.raises(CtglipError, match='missing column'):
        load_ctrate_labels(tmp_path/'l.csv')
    with pytest.raises(CtglipError, match='XYSpacing'):
        ctrate_affine({'XYSpacing': None, 'ZSpacing': 0})


def test_ctrate_affine_oblique_is_orthonormal():
    iop = [np.cos(0.2), np.sin(0.2), 0, -np.sin(0.2), np.cos(0.2), 0]
    A = ctrate_affine({'XYSpacing': '[0.7, 0.7]', 'ZSpacing': 2.0, 'ImageOrientationPatient': json.dumps([float(v) for v in iop]), 'ImagePositionPatient': '[1, 2, 3]'})
    assert np.allclose(np.sqrt((A[:3, :3]**2).sum(0)), [0.7, 0.7, 2.0])
    assert np.allclose(A[:3, 3], [-1, -2, 3])


def test_organ_split_loader(tmp_path):
    (tmp_path/'d.json').write_text(json.dumps({'valid_1_a': {'Findings': ' Lung nodule.', 'lung': 'Lung nodule.'}}))
    df = load_organ_split(tmp_path/'d.json')
    assert df.loc[0, 'findings'] == 'Lung nodule.' and df.loc[0, 'organs'] == {'lung': 'Lung nodule.'}
