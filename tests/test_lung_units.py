"""`data.lung_units=sides` end to end on the CT-RATE-shaped fixture: pairs of the lung sides, batches whose `organ_idx`
index the run's vocabulary, side pairs drawing the lung's negatives, a few tiny training steps, and `ctglip evaluate`
grounding the lung labels on the sides. The images and reports do not match: the tests check wiring, not numbers."""
import json

import numpy as np
import pytest
import torch

from ctglip.anatomy import pair_organs
from ctglip.config import get_config
from test_ctrate import make_ctrate, ctglip

# the fixture's abdominal CT cuts the lung bases, which the tiny preset's 32^3 input at 6 mm leaves out: at 12 mm it holds them
SIDES = ['data.lung_units=sides', 'data.keep_truncated=true', 'data.min_organ_fraction=0.05', 'data.spacing=12,12,12']
STUDIES = {'train': [(1, 1), (2, 1), (3, 1)], 'valid': [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 1)]}


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    "A CT-GLIP run of 3 tiny steps under `data.lung_units=sides` (its work folder holds the pairs and cache)."
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp('sides'); d = make_ctrate(base/'CT-RATE', studies=STUDIES)
    rc, out, err = ctglip('train', '--preset', 'tiny', '--data', d['root'], '--work', base/'work', '--out', base/'run', 'steps=3', *SIDES)
    assert rc == 0, err[-2000:]
    return dict(data=d, work=base/'work', run=base/'run', base=base)


def test_pairs_and_batches_use_the_sides(run):
    from ctglip.data.dataset import prepare_data, CacheDataset, make_loader
    from ctglip.data.layout import read_pairs
    cfg = get_config('tiny', SIDES)
    paths = prepare_data(run['data']['root'], cfg, work=run['work'], workers=1)
    organs = {r['organ'] for r in read_pairs(paths.pairs)}
    assert {'lung_right', 'lung_left'} & organs and 'lung' not in organs
    voc = pair_organs('sides')
    seen = set()
    for split in ('train', 'valid'):
        ds = CacheDataset(paths.cache, paths.pairs, cfg, split=split, train=False, reports=paths.scans)
        for b in make_loader(ds, shuffle=False, batch_size=2):
            idx = b['organ_idx'].tolist(); seen |= set(b['organ'])
            assert min(idx) >= 0 and idx == [voc.index(o) for o in b['organ']]
    assert {'lung_right', 'lung_left'} <= seen


def test_side_pairs_draw_the_lung_negatives(run):
    from ctglip.data.dictionary import AbnormalityDictionary
    from ctglip.data.layout import read_pairs
    from ctglip.data.dictionary import build_dictionary
    paths_pairs = run['work']/'pairs.jsonl'
    ad = AbnormalityDictionary(build_dictionary(read_pairs(paths_pairs)))
    assert ad.entries('lung_left') == ad.entries('lung') and len(ad.entries('lung')) > 0
    neg = ad.sample_negatives('lung_right', [], 4, np.random.default_rng(0))
    assert len(neg) == 4 and set(neg) <= set(ad.entries('lung'))
    voc = json.loads((run['run']/'vocabulary.json').read_text())     # what `ctglip predict` scores: keyed by organ group
    assert 'lung' in voc and 'lung_right' not in voc


def test_model_vocabulary_is_the_runs(run):
    from ctglip.runs import load_run
    model, cfg = load_run(run['run'])
    assert cfg.data.lung_units == 'sides' and model.organs == pair_organs('sides') and len(model.prompts) == len(model.organs)


def test_evaluate_grounds_lung_labels_on_the_sides(run, tmp_path):
    rc, out, err = ctglip('evaluate', run['run'], '--data', run['data']['root'], '--work', run['work'], '--split', 'valid',
                          '--label-set', 'ct-rate', '--out', tmp_path/'ev', '--n-boot', 0)
    assert rc == 0, err[-2000:]
    res = json.loads((tmp_path/'ev'/'metrics.json').read_text())
    lung = [n for n, m in res['labels'].items() if m['units'] == ['lung_right', 'lung_left']]
    assert 'Emphysema' in lung and len(lung) >= 10
    assert sum(res['labels'][n]['n_grounded'] for n in lung) > 0
    assert res['labels']['Emphysema']['n_grounded'] > 0
