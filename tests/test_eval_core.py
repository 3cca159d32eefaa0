"evaluate(): each scan embedded once, operating thresholds only from validation data, the model's own organ prompt, paired comparison."
import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ctglip.core import CtglipError
from ctglip.eval.core import embed, score, evaluate, compare
from ctglip.eval.metrics import youden_threshold
from ctglip.models.glip import CTGLIP

ORGS = ['liver', 'spleen', 'kidney_left', 'kidney_right']


def batch(ids, S=12, seed=3, p=.5):
    "A training-format batch of the scans `ids` (repeats allowed, as a loader that wraps around); image value = scan number."
    pm = torch.zeros(len(ids), S, S, S, dtype=torch.long); imgs, organ, sidx, text, fnd = [], [], [], [], []
    for b, sid in enumerate(ids):
        g = np.random.default_rng([seed, zlib.crc32(sid.encode())])
        imgs.append(np.full((1, S, S, S), float(sid[1:])) + g.random((1, S, S, S)) * 1e-3)
        for j, o in enumerate(ORGS):
            pm[b, 3*j:3*j+3] = len(organ) + 1; organ.append(o); sidx.append(b)
            f = ['cyst'] if g.random() < p else []
            fnd.append(f); text.append(f"{o} {'cyst' if f else 'normal'} {sid}")
    return dict(image=torch.tensor(np.stack(imgs), dtype=torch.float32), pair_map=pm, scan_idx=torch.tensor(sidx), organ=organ,
                organ_idx=torch.tensor([ORGS.index(o) for o in organ]), text=text, is_normal=torch.tensor([not f for f in fnd]),
                findings=fnd, report=[f"report of {sid}" for sid in ids], scan_id=list(ids))


class Echo(nn.Module):
    "A scan-level model with perfect retrieval: scan k's image and the report of scan k embed to the same vector."
    level = 'scan'
    def __init__(self, E=64):
        super().__init__(); self.E = E; self.w = nn.Parameter(torch.zeros(1))
    def _vec(self, k): return torch.randn(self.E, generator=torch.Generator().manual_seed(int(k)))
    def encode_scans(self, image): return F.normalize(torch.stack([self._vec(round(float(x))) for x in image.flatten(1)[:, 0]]), dim=-1)
    def encode_text(self, texts):
        return F.normalize(torch.stack([self._vec(t.split()[-1][1:]) if t.startswith('report of') else
                                        torch.randn(self.E, generator=torch.Generator().manual_seed(zlib.crc32(t.encode()))) for t in texts]), dim=-1)


def test_wrapped_split_embeds_each_scan_once():
    b = batch(['s1', 's2', 's3', 's1', 's2', 's3', 's1', 's2'])   # a 3-scan split read with batch 8
    e = embed(Echo(), [b])
    assert e['scans'].scan_id.tolist() == ['s1', 's2', 's3'] and len(e['units']) == 12 and e['img'].shape[0] == 3
    r = score(e, Echo(), tasks=[], n_boot=0)
    assert r['n_scans'] == 3 and r['summary']['report->scan R@1'] == 1.0 and r['summary']['scan->report R@1'] == 1.0
    e2 = embed(Echo(), [batch(['s1', 's2']), batch(['s3', 's1'])])   # across batches too
    assert e2['scans'].scan_id.tolist() == ['s1', 's2', 's3'] and e2['units'].scan_row.max() == 2


def _data(prefix, n=12):
    return [batch([f'{prefix}{k}' for k in range(i, i + 4)]) for i in range(1, n + 1, 4)]


def test_threshold_metrics_come_from_validation_only():
    m = Echo(); test, valid = embed(m, _data('t')), embed(m, _data('v', 16))
    r = score(test, m, n_boot=50)
    assert r['summary']['abnormality_f1_mean'] is None and r['summary']['abnormality_auc_mean'] is not None
    assert r['protocol']['threshold'] is None and 'validation' in r['protocol']['note']
    assert np.isnan(r['abnormality']['table'].f1).all()
    rv = score(test, m, n_boot=50, valid=valid)
    p = rv['protocol']
    assert (p['selected_on'], p['threshold'], p['labels'], p['prompts'], p['tasks']) == ('valid', 'youden-on-valid', 'pairs', 'dict', 'valid')
    a, av = rv['abnormality'], score(valid, m, n_boot=0, tasks=rv['abnormality']['tasks'])['abnormality']
    for j in range(len(a['tasks'])):
        mv = ~np.isnan(av['labels'][:, j]); mt = ~np.isnan(a['labels'][:, j])
        assert np.isclose(a['thresholds'][j], youden_threshold(av['labels'][mv, j].astype(int), av['scores'][mv, j]))
        f1 = a['table'].f1[j]; yt, st = a['labels'][mt, j].astype(int), a['scores'][mt, j]
        pred = st >= a['thresholds'][j]
        assert np.isclose(f1, 2 * (pred & (yt == 1)).sum() / max(pred.sum() + yt.sum(), 1))
    assert rv['summary']['abnormality_f1_mean'] is not None
    ev = evaluate(m, _data('t'), valid=_data('v', 16), n_boot=50)
    assert ev['summary'] == rv['summary']
    with pytest.raises(CtglipError, match='not both'): score(test, m, valid=valid, thresholds=a['thresholds'])


def test_overridden_organ_prompt_changes_evaluation_prompts():
    torch.manual_seed(0)
    model = CTGLIP(embed_dim=16, text='tiny-random', vision_kw=dict(cnn_widths=(4, 8, 16)))
    seen = []; enc = model.encode_text
    model.encode_text = lambda texts: (seen.extend(texts), enc(texts))[1]
    e = embed(model, _data('t'))
    r1 = score(e, model, candidates=ORGS, n_boot=0)
    assert 'a CT image of the liver' in seen and r1['protocol']['organ_prompt'] == 'a CT image of the {organ}'
    seen.clear(); model.organ_prompt = 'an axial CT slice through the {organ}'
    r2 = score(e, model, candidates=ORGS, n_boot=0)
    assert 'an axial CT slice through the liver' in seen and 'a CT image of the liver' not in seen
    assert r2['protocol']['organ_prompt'] == model.organ_prompt and model.prompts[0].startswith('an axial CT slice')
    assert not np.allclose(r1['organ']['logits'], r2['organ']['logits'])


def test_compare_is_paired():
    m = Echo(); test, valid = embed(m, _data('t')), embed(m, _data('v', 16))
    rv = score(test, m, n_boot=0, valid=valid)
    same = compare(rv, rv, n_boot=200)
    assert [(same[k]['estimate'], same[k]['ci']) for k in ('auc', 'f1')] == [(0.0, [0.0, 0.0])] * 2
    r = score(test, m, n_boot=0)
    assert compare(rv, r, n_boot=20)['f1']['ci'] is None   # no validation thresholds for one model: no F1 difference
