"RadGenome-ChestCT: region sentences -> pairing units through `ctglip/assets/radgenome_regions.csv`, and `ctglip pairs --radgenome`."
import json
from collections import Counter

import pandas as pd
import pytest

from ctglip.anatomy import LUNG_UNITS, pair_organs
from ctglip.core import CtglipError, shared_data_dir
from ctglip.data.layout import read_pairs
from ctglip.data.pairing import pairs_cli
from ctglip.anatomy import RG_HANDLING, radgenome_regions
from ctglip.data.public import (load_radgenome_regions, radgenome_scan_units,
                                radgenome_units)


def test_the_region_table_names_pairing_units_under_every_lung_setting():
    rt = radgenome_regions()
    assert set(rt.handling) <= set(RG_HANDLING) and not rt.index.duplicated().any()
    for lu in LUNG_UNITS:
        us = {u for r in rt.itertuples() for u in (getattr(r, lu) or r.lung).split('|') if u}
        assert us <= set(pair_organs(lu)), (lu, us - set(pair_organs(lu)))
    assert set(rt.loc[rt.lung == '', 'handling']) == {'scan', 'drop'} and set(rt.loc[rt.lung != '', 'handling']) == {'unit'}


def test_a_path_takes_its_most_specific_listed_part():
    assert radgenome_units('bone/bone/rib/rib 6/left rib 6') == (('ribs',), 'unit')
    assert radgenome_units('lung/lung/lung lower lobe/left lung lower lobe', 'lobes') == (('lung_lower_lobe_left',), 'unit')
    assert radgenome_units('lung/lung/lung lower lobe/left lung lower lobe', 'sides') == (('lung_left',), 'unit')
    assert radgenome_units('pelvis/uterus') == ((), 'unmapped')
    with pytest.raises(CtglipError, match="unknown lung units 'halves'"): radgenome_units('lung', 'halves')


ROWS = [  # made-up sentences in RadGenome's columns; a sentence sits in its region and every region above it
    ('valid_1_a_1.nii.gz', '', 'Whole report text.'),
    ('valid_1_a_1.nii.gz', 'lung', 'A 6 mm nodule in the right lower lobe.'),
    ('valid_1_a_1.nii.gz', 'lung/lung', 'A 6 mm nodule in the right lower lobe.'),
    ('valid_1_a_1.nii.gz', 'lung/lung/right lung', 'A 6 mm nodule in the right lower lobe.'),
    ('valid_1_a_1.nii.gz', 'lung/lung/right lung/right lung lower lobe', 'A 6 mm nodule in the right lower lobe.'),
    ('valid_1_a_1.nii.gz', 'abdomen/abdomen/liver', 'A 12 mm cyst is seen in the liver.'),
    ('valid_1_a_1.nii.gz', 'abdomen/abdomen/kidney', 'A small stone in the left kidney.'),
    ('valid_1_a_1.nii.gz', 'abdomen/abdomen/spleen', 'The spleen is normal in size.'),
    ('valid_1_a_1.nii.gz', 'mediastinum/mediastinal tissue', 'Enlarged lymph nodes.'),
    ('valid_1_a_1.nii.gz', 'others/larynx', 'Larynx unremarkable.'),
    ('valid_1_a_1.nii.gz', 'pelvis/uterus', 'Made-up unmapped region.'),
]


@pytest.fixture
def data(tmp_path):
    from test_ctrate import make_ctrate
    make_ctrate(tmp_path/'d', studies={'valid': [(1, 1), (2, 1)]})
    pd.DataFrame(ROWS, columns=['Volumename', 'Anatomy', 'Sentence']).to_csv(tmp_path/'rg.csv', index=False)
    return tmp_path


def test_region_sentences_become_unit_pairs(data, capsys):
    w = data/'w'
    assert pairs_cli([str(data/'d'), 'data.lung_units=lobes', '--out', str(w), '--radgenome', str(data/'rg.csv'), '--keep-truncated']) == 0
    out = capsys.readouterr().out
    assert 'radgenome: 4 region sentences paired, 1 scan-level, 1 dropped, 1 in unmapped regions; 1 scans without region sentences' in out
    got = {p['organ']: p for p in read_pairs(w/'pairs.jsonl')}
    assert {p['scan_id'] for p in got.values()} == {'valid_1_a_1'}                                  # valid_2 has no region sentences
    assert (got['lung_lower_lobe_right']['findings'], got['lung_lower_lobe_right']['text']) == (['lung nodule'], 'A 6 mm nodule in the right lower lobe.')
    assert got['lung_lower_lobe_left']['is_normal'] and got['kidney_right']['is_normal']           # the sentence names the left kidney only
    assert not got['kidney_left']['is_normal'] and not got['liver']['is_normal']
    assert (got['spleen']['is_normal'], got['spleen']['text']) == (True, 'The spleen is normal in size.')
    made = json.loads((w/'pairs.json').read_text())
    assert made['radgenome']['file'] == str((data/'rg.csv').resolve()) and len(made['radgenome']['sha1']) == 40


def test_report_pairs_and_region_pairs_are_different_runs(data):
    w = data/'w'
    assert pairs_cli([str(data/'d'), '--out', str(w)]) == 0
    by_report = read_pairs(w/'pairs.jsonl')
    assert pairs_cli([str(data/'d'), '--out', str(w), '--radgenome', str(data/'rg.csv')]) == 0
    assert read_pairs(w/'pairs.jsonl') != by_report and 'radgenome' in json.loads((w/'pairs.json').read_text())
    assert {p['scan_id'] for p in read_pairs(w/'pairs.jsonl')} == {'valid_1_a_1'}


def test_a_bad_region_file_names_the_file(data, tmp_path):
    (tmp_path/'bad.csv').write_text('Volumename,Region\nvalid_1_a_1.nii.gz,lung\n')
    with pytest.raises(CtglipError, match=r"bad\.csv.*missing column\(s\) \['Anatomy'\]"):
        pairs_cli([str(data/'d'), '--out', str(tmp_path/'w'), '--radgenome', str(tmp_path/'bad.csv')])
    with pytest.raises(CtglipError, match='file not found'):
        pairs_cli([str(data/'d'), '--out', str(tmp_path/'w'), '--radgenome', str(tmp_path/'none.csv')])


SD = shared_data_dir()
VQA = SD/'radgenome_chestct_subset2000/train_vqa_abnormality.csv' if SD else None

@pytest.mark.skipif(VQA is None or not VQA.exists(), reason='RadGenome text not in the shared data')
def test_every_shared_radgenome_region_maps():
    regions = pd.read_csv(VQA, usecols=['Anatomy']).Anatomy.value_counts()
    h = {a: radgenome_units(a)[1] for a in regions.index}
    unmapped = [a for a, k in h.items() if k == 'unmapped']
    print(f"{len(regions)} region paths, {len(unmapped)} unmapped; rows by handling: "
          f"{ {k: int(regions[[a for a in h if h[a] == k]].sum()) for k in (*RG_HANDLING, 'unmapped')} }")
    assert unmapped == []
    rows = pd.read_csv(VQA).rename(columns={'Abnormality': 'Sentence'}).head(400)
    units, st = radgenome_scan_units(rows.assign(study='', group='')[['Volumename', 'Anatomy', 'Sentence']], 'sides')
    assert st['unmapped'] == 0 and st['unit'] > 0 and all(set(u) <= set(pair_organs('sides')) for u in units.values())
