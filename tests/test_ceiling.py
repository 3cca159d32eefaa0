"""Fast checks of the supervised ceiling's pieces (the measurement itself is tools/ceiling_probe.py)."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ctglip.core import CtglipError
from ctglip.config import get_config
from ctglip.models.vision import pool_organs_max
from ctglip.eval.ceiling import ceiling_loss, pair_targets, balanced_weights, unit_labels, _histograms, train_ceiling
from ctglip.synth.truth import size_bin, hidden_cells, lesion_sizes, finding_sources, case_findings


def test_pool_organs_max_matches_a_loop():
    torch.manual_seed(0); ft = torch.randn(2, 4, 3, 3, 3); pm = torch.randint(0, 5, (2, 6, 6, 6)); pm[0, 0, 0, 0] = 4
    got = pool_organs_max(ft, pm)
    for k in range(1, 5):
        cells = [ft[b, :, x // 2, y // 2, z // 2] for b, x, y, z in (pm == k).nonzero().tolist()]
        assert torch.allclose(got[k - 1], torch.stack(cells).amax(0))


def test_loss_and_targets():
    b = dict(organ=['liver', 'spleen'], findings=[['liver cyst'], []], scan_idx=torch.tensor([0, 1]), scan_id=['a', 'b'])
    tasks = [('liver', 'liver cyst'), ('spleen', 'splenomegaly')]
    y, m = pair_targets(b, tasks)
    assert y.tolist() == [[1, 0], [0, 0]] and m.tolist() == [[1, 0], [0, 1]]
    assert pair_targets(b, tasks, {('a', 'liver', 'liver cyst')})[1].tolist() == [[0, 0], [0, 1]]
    lg = torch.tensor([[0.3, 5.], [1., -2.]]); pw = torch.tensor([3., 1.])
    ref = (3 * F.softplus(-lg[0, 0]) + F.softplus(lg[1, 1])) / 2   # BCE of a weighted positive and of a negative
    assert torch.allclose(ceiling_loss(lg, y, m, pw), ref)


def test_balanced_weights_and_labels():
    pairs = [dict(split='train', scan_id=s, organ='liver', findings=f) for s, f in (('a', ['x']), ('b', []), ('c', []), ('d', []))]
    assert balanced_weights(pairs + [dict(split='test', scan_id='e', organ='liver', findings=[])], [('liver', 'x'), ('liver', 'y')]).tolist() == [3., 1.]
    import pandas as pd
    y = unit_labels(pd.DataFrame(pairs), [('liver', 'x')], {('a', 'liver', 'x')})
    assert np.isnan(y[0, 0]) and y[1:, 0].tolist() == [0, 0, 0]


def test_sizes_from_case_records(tmp_path):
    (tmp_path/'cases').mkdir()
    recs = {'s1': [dict(organ='liver', name='liver calcification', size_mm=4., sizes_mm=[4., 7.]), dict(organ='liver', name='hepatomegaly')],
            's2': [dict(organ='liver', name='liver calcification', size_mm=9.)], 's3': [], 's4': [dict(organ='liver', name='hepatomegaly')]}
    for s, f in recs.items(): (tmp_path/'cases'/f'{s}.json').write_text(json.dumps(dict(findings=f)))
    pairs = [dict(scan_id='s1', organ='liver', findings=['granuloma', 'hepatomegaly']), dict(scan_id='s2', organ='liver', findings=['granuloma']),
             dict(scan_id='s3', organ='liver', findings=[]), dict(scan_id='s4', organ='liver', findings=['hepatomegaly'])]
    assert finding_sources(pairs, case_findings(tmp_path))[('liver', 'granuloma')] == {'liver calcification'}
    sz = lesion_sizes(tmp_path, pairs)
    assert sz[('s1', 'liver', 'granuloma')] == 7. and sz[('s2', 'liver', 'granuloma')] == 9. and np.isnan(sz[('s1', 'liver', 'hepatomegaly')])
    assert hidden_cells(sz, 6.) == {('s1', 'liver', 'granuloma'), ('s2', 'liver', 'granuloma')}
    assert [size_bin(v) for v in (1.9, 2., 4., np.nan)] == ['<2', '2-4', '>=4', 'diffuse']
    with pytest.raises(CtglipError, match='cases'): case_findings(tmp_path/'missing')


def test_histograms():
    hu = np.arange(8.).reshape(2, 2, 2); pm = np.array([[[1, 1], [0, 0]], [[2, 2], [2, 2]]])
    h = _histograms(hu, pm, 2)
    assert np.allclose(h[0, [0, 8, 9]], [0, 1, .5]) and np.allclose(h[1, [0, 8, 9]], [4, 7, 5.5])


def test_bad_requests():
    with pytest.raises(CtglipError, match='no tasks'): train_ceiling(get_config('tiny'), None, [])
    with pytest.raises(CtglipError, match='sampling'): train_ceiling(get_config('tiny'), None, [('liver', 'x')], sampling='sum')
