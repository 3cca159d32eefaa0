"Pairing: lung units, the truncation policy, the CT-RATE labels' units, and sharded, resumable `ctglip pairs`."
import json
from collections import Counter

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

import ctglip.data.pairing as pairing
from ctglip.anatomy import LUNG_UNITS, name2id, pair_organs, units_of
from ctglip.config import DataConfig
from ctglip.core import CtglipError
from ctglip.data.labels import load_label_set
from ctglip.data.layout import find_scans, read_pairs
from ctglip.data.pairing import (make_pairs, mask_organs, pairing_policy, pairs_cli, shard_file, shard_of,
                                 dataset_pairs)

N2I = name2id()
LOBES = ['lung_upper_lobe_left', 'lung_lower_lobe_left', 'lung_upper_lobe_right', 'lung_middle_lobe_right', 'lung_lower_lobe_right']


def chest_mask(cut=('aorta',)) -> np.ndarray:
    "A (20, 8, 12) v2 label map: five lobes, heart and liver inside the field of view, `cut` units through all of z."
    lab = np.zeros((20, 8, 12), np.uint8)
    for k, n in enumerate(LOBES + ['heart', 'liver']): lab[2 * k + 1:2 * k + 3, 2:6, 3:9] = N2I[n]
    for j, n in enumerate(cut): lab[16 + j, 2:6, :] = N2I[n]
    return lab


# --- lung units ---------------------------------------------------------------------------------
RLL = 'Small nodule in the right lower lobe. The heart is normal.'

def test_rll_sentence_pairs_with_the_rll_under_lobes_and_the_right_lung_under_sides():
    lab = chest_mask()
    lobes = {p['organ']: p for p in make_pairs('s', mask_organs(lab, lung_units='lobes'), RLL, lung_units='lobes')}
    assert lobes['lung_lower_lobe_right']['findings'] == ['lung nodule'] and lobes['lung_lower_lobe_right']['label_ids'] == [N2I['lung_lower_lobe_right']]
    assert [o for o in LOBES if not lobes[o]['is_normal']] == ['lung_lower_lobe_right']
    sides = {p['organ']: p for p in make_pairs('s', mask_organs(lab, lung_units='sides'), RLL, lung_units='sides')}
    assert (sides['lung_right']['is_normal'], sides['lung_left']['is_normal']) == (False, True)
    assert sides['lung_right']['label_ids'] == sorted(N2I[o] for o in LOBES if o.endswith('right'))
    one = {p['organ']: p for p in make_pairs('s', mask_organs(lab), RLL)}
    assert one['lung']['findings'] == ['lung nodule'] and not any(o in one for o in LOBES + ['lung_right'])


def test_default_lung_setting_changes_nothing():
    assert pair_organs() == pair_organs('lung') and 'lung' in pair_organs() and len(pair_organs()) == 44
    assert DataConfig().lung_units == 'lung'


def test_bad_lung_setting_is_a_clear_error():
    with pytest.raises(CtglipError, match="unknown lung units 'halves'"): mask_organs(chest_mask(), lung_units='halves')


# --- truncation policy --------------------------------------------------------------------------
CALC = 'Calcified plaques in the thoracic aorta. Small hiatal hernia.'

def test_truncated_units_are_paired_and_flagged():
    org = mask_organs(chest_mask(('aorta', 'esophagus', 'trachea')))
    assert set(org.loc[org.truncated, 'group']) == {'aorta', 'esophagus', 'trachea'}
    assert not {'aorta', 'esophagus'} & {p['organ'] for p in make_pairs('s', org, CALC)}       # the plain truncation rule
    st = Counter(); got = {p['organ']: p for p in make_pairs('s', org, CALC, truncated_units=DataConfig().truncated_units, stats=st)}
    assert got['aorta']['truncated'] and not got['aorta']['is_normal'] and got['esophagus']['findings'] == ['hiatal hernia']
    assert got['trachea']['is_normal'] and 'truncated' not in got['heart'] and st['truncated_paired'] == 3
    region = {p['organ'] for p in make_pairs('s', org, CALC, truncated_units=('chest',))}
    assert {'aorta', 'esophagus', 'trachea'} <= region
    kept = make_pairs('s', org, CALC, keep_truncated=True)
    assert {p['organ'] for p in kept if p.get('truncated')} == {'aorta', 'esophagus', 'trachea'}
    with pytest.raises(CtglipError, match="unknown unit or region 'pleura'"): make_pairs('s', org, CALC, truncated_units=('pleura',))


def test_pairing_policy_records_the_new_fields():
    pol = pairing_policy(DataConfig())
    assert {'lung_units', 'truncated_units', 'keep_truncated'} <= set(pol) and json.loads(json.dumps(pol)) == pol
    assert pairing_policy(DataConfig(lung_units='lobes')) != pol and pairing_policy(DataConfig(truncated_units=())) != pol


# --- the CT-RATE labels' units -----------------------------------------------------------------
def test_every_ctrate_label_has_a_unit_under_every_lung_setting_or_a_documented_scan_prompt():
    df = load_label_set('ct-rate').drop_duplicates('name')
    scan_level = set(df.loc[df.note.str.contains('scan-level prompt'), 'name'])
    assert scan_level == {'Medical material', 'Lymphadenopathy'}
    for lu in LUNG_UNITS:
        vocab = set(pair_organs(lu))
        for r in df[~df.name.isin(scan_level)].itertuples():
            us = [u for o in r.organ.split('|') for u in units_of(o, lu)]
            assert us and set(us) <= vocab, (lu, r.name, us)
    assert df.set_index('name').loc['Coronary artery wall calcification', 'organ'] == 'heart'
    assert 'no coronary' in df.set_index('name').loc['Coronary artery wall calcification', 'note']


# --- sharded, resumable `ctglip pairs` -----------------------------------------------------------
REPORTS = ['Small nodule in the right lower lobe.', 'Cardiomegaly.', 'Calcified aortic plaques.', 'Normal.',
           'Left pleural effusion.', 'Hepatic cyst.', 'Emphysema.', 'Hiatal hernia.']

@pytest.fixture
def dataset(tmp_path):
    "A scans.csv dataset of eight scans with small label maps (one scan without a mask)."
    root = tmp_path/'data'; (root/'m').mkdir(parents=True); rows = []
    for k, rep in enumerate(REPORTS):
        sid = f"train_{k}_a_1"
        if k != 3: nib.save(nib.Nifti1Image(chest_mask(('aorta', 'esophagus'))[:, :, : 12 - k % 3], np.eye(4)), root/f'm/{sid}.nii.gz')
        rows.append(dict(scan_id=sid, split='train', image=f'{sid}.nii.gz', mask=f'm/{sid}.nii.gz' if k != 3 else '', findings=rep))
    pd.DataFrame(rows).to_csv(root/'scans.csv', index=False)
    return root


def test_two_shards_and_merge_equal_one_process(dataset, tmp_path):
    assert {shard_of(f"train_{k}_a_1", 2) for k in range(len(REPORTS))} == {0, 1}      # both shards get scans
    one, two = tmp_path/'one', tmp_path/'two'
    assert pairs_cli([str(dataset), 'data.lung_units=sides', '--out', str(one)]) == 0
    assert pairs_cli([str(dataset), 'data.lung_units=sides', '--out', str(two), '--shard', '0/2', '--workers', '2']) == 0
    assert not (two/'pairs.jsonl').exists()
    assert pairs_cli([str(dataset), 'data.lung_units=sides', '--out', str(two), '--shard', '1/2']) == 0   # the last shard merges
    assert read_pairs(two/'pairs.jsonl') == read_pairs(one/'pairs.jsonl')
    assert json.loads((two/'pairs.json').read_text()) == json.loads((one/'pairs.json').read_text())
    assert read_pairs(one/'pairs.jsonl') == dataset_pairs(find_scans(dataset), DataConfig(lung_units='sides'))
    (two/'pairs.jsonl').unlink()
    assert pairs_cli([str(dataset), 'data.lung_units=sides', '--out', str(two), '--merge']) == 0
    assert read_pairs(two/'pairs.jsonl') == read_pairs(one/'pairs.jsonl')


def test_kill_and_resume_gives_the_same_pairs_and_redoes_only_the_rest(dataset, tmp_path, monkeypatch):
    ref = tmp_path/'ref'; assert pairs_cli([str(dataset), '--out', str(ref)]) == 0
    w = tmp_path/'w'; assert pairs_cli([str(dataset), '--out', str(w)]) == 0
    sf = shard_file(w/'pairs.jsonl', (0, 1)); lines = sf.read_text().splitlines(keepends=True)
    assert len(lines) == 1 + len(REPORTS)
    sf.write_text(''.join(lines[:4]) + lines[4][:25]); (w/'pairs.jsonl').unlink()   # killed while writing the 4th scan
    done, orig = [], pairing.scan_record
    monkeypatch.setattr(pairing, 'scan_record', lambda s, d: done.append(s.scan_id) or orig(s, d))
    assert pairs_cli([str(dataset), '--out', str(w)]) == 0
    assert len(done) == len(REPORTS) - 3 and read_pairs(w/'pairs.jsonl') == read_pairs(ref/'pairs.jsonl')
    done.clear(); assert pairs_cli([str(dataset), '--out', str(w)]) == 0 and done == []                  # nothing left to do
    assert pairs_cli([str(dataset), 'data.lung_units=lobes', '--out', str(w)]) == 0 and len(done) == len(REPORTS)  # another policy: redone


def test_shard_errors_name_the_problem(dataset, tmp_path):
    with pytest.raises(CtglipError, match='I/N'): pairs_cli([str(dataset), '--out', str(tmp_path/'x'), '--shard', 'two'])
    with pytest.raises(CtglipError, match='cannot tell the shard count'): pairs_cli([str(dataset), '--out', str(tmp_path/'y'), '--merge'])
    assert pairs_cli([str(dataset), '--out', str(tmp_path/'z'), '--shard', '0/2']) == 0
    with pytest.raises(CtglipError, match=r'1/2 \(\d+ scans left\)'): pairs_cli([str(dataset), '--out', str(tmp_path/'z'), '--merge'])


# --- masks through the one reading rule; scans without a report ------------------------------------
def _ctrate(root, **kw):
    from test_ctrate import make_ctrate
    return make_ctrate(root, studies={'valid': [(1, 1), (2, 1)]}, **kw)


def test_blank_header_mask_pairs_like_the_mask_with_its_geometry(tmp_path):
    _ctrate(tmp_path/'a', blank_header=True); _ctrate(tmp_path/'b', blank_header=True, blank_mask=True)
    h = nib.load(find_scans(tmp_path/'b')[0].mask).header; assert h['sform_code'] == h['qform_code'] == 0   # no geometry stored
    st = Counter(); blank = dataset_pairs(find_scans(tmp_path/'b'), stats=st)
    assert st['bad_mask'] == 0 and len(blank) > 0
    assert blank == dataset_pairs(find_scans(tmp_path/'a'))


def test_scans_without_a_report_are_logged_and_not_paired(tmp_path, caplog):
    _ctrate(tmp_path, no_report={'valid_2_a_1.nii.gz': 'missing'})
    caplog.set_level('INFO', logger='ctglip.pairing'); st = Counter()
    pairs = dataset_pairs(find_scans(tmp_path), stats=st)
    assert st['no_report'] == 1 and {p['scan_id'] for p in pairs} == {'valid_1_a_1'}
    assert "1 scans without a report: kept in the scan table, scored by ctglip evaluate, not paired" in caplog.text
