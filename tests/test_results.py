"The numbers the README prints come from the committed results file, never from typing."
import json, re
from pathlib import Path

from ctglip.demo import headline

ROOT = Path(__file__).resolve().parent.parent


def test_readme_headline_is_the_results_file():
    res = json.loads((ROOT/'results'/'demo_seed0.json').read_text())
    readme = (ROOT/'README.md').read_text()
    assert headline(res) in readme, 'README.md (nbs/index.ipynb) does not print results/demo_seed0.json: re-run the index notebook'


def test_results_file_is_a_full_demo_run():
    res = json.loads((ROOT/'results'/'demo_seed0.json').read_text())
    cfg = res['config']
    assert cfg['seed'] == 0 and cfg['preset'] == 'cpu-demo' and cfg['synth']['n'] == 512
    assert cfg['ctglip']['train']['steps'] == cfg['clip']['train']['steps'] and cfg['ctglip']['model'] == cfg['clip']['model']
    assert res['protocol']['selected_on'] == 'valid' and res['clip']['text_coverage'] == 1.0
    assert set(res['ctglip']['organ_top1_slabs']) == {'40', '80', '160'}


def test_results_file_scores_only_tasks_with_enough_positives():
    "Every scored task has >= min_pos positives in the validation and in the test split; the others are listed with their counts."
    res = json.loads((ROOT/'results'/'demo_seed0.json').read_text())
    d, k = res['data'], res['data']['min_pos']
    assert k >= 10 and d['tasks'] and set(d['tasks']) == {t for t, c in d['task_counts'].items() if c['scored']}
    assert all(c['valid'] >= k and c['test'] >= k for t, c in d['task_counts'].items() if c['scored'])
    assert 0.5 < res['ceiling']['train_auc_mean'] <= 1 and res['ctglip']['abnormality_auc_fraction_of_ceiling'] > 0


def test_no_typed_demo_numbers_in_prose():
    "Outside the printed table, the README carries no three-decimal numbers (they would be typed)."
    res = json.loads((ROOT/'results'/'demo_seed0.json').read_text())
    readme = (ROOT/'README.md').read_text().replace(headline(res), '')
    prose = re.sub(r'```.*?```', '', readme, flags=re.S)
    assert not re.findall(r'\b0\.\d{3}\b', prose), re.findall(r'\b0\.\d{3}\b', prose)


def test_no_typed_numbers_in_the_study_prose():
    "The study notebook's text cells carry no three-decimal numbers: its findings are printed from results/study.json."
    nb = json.loads((ROOT/'nbs'/'70_study.ipynb').read_text())
    md = '\n'.join(''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'markdown')
    assert not re.findall(r'\b0\.\d{3}\b', md), re.findall(r'\b0\.\d{3}\b', md)


def test_study_results_file_is_a_full_study():
    "results/study.json holds the 5-seed study under the demo's protocol: both encoders, the ablations, a ceiling per seed."
    from ctglip.study import study_summary, READOUT_ABLATIONS, INITS
    rec = json.loads((ROOT/'results'/'study.json').read_text())
    s = rec['setup']
    assert len(s['seeds']) >= 5 and len(s['steps']) == 1 and s['labels'] == 'generator' and s['preset'] == 'cpu-demo'
    assert set(rec['paired']) == {'cnn', 'vit'} and all(len(v) == len(s['seeds']) for v in rec['paired'].values())
    assert set(rec['ablation_paired']) == set(READOUT_ABLATIONS)
    assert len(rec['ceiling']['per_seed']) == len(s['seeds']) and len(rec['per_task']) == s['n_tasks']
    assert set(rec['finetune']['auc']) == set(INITS) and all(len(v) == len(s['seeds']) for v in rec['finetune']['paired'].values())
    assert 'Supervised ceiling' in study_summary(rec)


def test_headline_run_is_the_study_seed_0():
    "The demo's seed-0 run and the study's seed-0 CNN runs were trained in different processes from one config: the same numbers."
    rec, res = json.loads((ROOT/'results'/'study.json').read_text()), json.loads((ROOT/'results'/'demo_seed0.json').read_text())
    d = {int(s): p['auc']['estimate'] for s, p in rec['paired']['cnn'].items()}
    assert len(d) == 5 and res['config']['seed'] == 0
    assert abs(d[0] - res['difference']['abnormality_auc_mean']['estimate']) < 1e-9
    assert abs(rec['runs']['ctglip-cnn-full-s0']['abnormality_auc_mean'] - res['ctglip']['abnormality_auc_mean']) < 1e-9
    assert rec['per_size'] and {r['vision'] for r in rec['per_size']} == {'cnn', 'vit'}
