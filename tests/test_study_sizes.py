"""`ctglip.study.per_size`: test positives binned by the generator's lesion diameter, scored against all negatives of their task."""
import json

import numpy as np

from ctglip.study import per_size, size_frame, run_name


def _eval(root, model, vision, seed, scores):
    d = root/run_name(model, vision, seed); d.mkdir(parents=True)
    ab = dict(tasks=[['liver', 'liver cyst'], ['liver', 'hepatomegaly']], scores=scores, thresholds=[np.nan, np.nan],
              labels=[[1, 1], [1, 0], [0, 0], [0, 0]], scan_ids=['a', 'b', 'c', 'd'], organs=['liver'] * 4)
    (d/'eval.json').write_text(json.dumps(dict(abnormality=ab), default=float))


def test_per_size(tmp_path):
    (tmp_path/'demo'/'data'/'cases').mkdir(parents=True)
    cases = dict(a=[dict(organ='liver', name='liver cyst', sizes_mm=[40.]), dict(organ='liver', name='hepatomegaly')],
                 b=[dict(organ='liver', name='liver cyst', sizes_mm=[8.])], c=[], d=[])
    for s, f in cases.items(): (tmp_path/'demo'/'data'/'cases'/f'{s}.json').write_text(json.dumps(dict(findings=f)))
    # CT-GLIP ranks the 40 mm cyst (>= 4 voxels at 6 mm) and the enlarged liver first, the 8 mm cyst (< 2 voxels) last; CLIP the reverse
    _eval(tmp_path/'study', 'ctglip', 'cnn', 0, [[3, 3], [-3, 0], [0, 1], [1, 2]])
    _eval(tmp_path/'study', 'clip', 'cnn', 0, [[-3, -3], [3, 0], [0, 1], [1, 2]])
    rows = per_size(tmp_path/'demo', tmp_path/'study', [0], visions=('cnn',))
    got = {(r['model'], r['bin']): (r['n_pos'], r['auc']) for r in rows}
    assert got == {('ctglip', '>=4'): (1, 1.), ('ctglip', '<2'): (1, 0.), ('ctglip', 'diffuse'): (1, 1.),
                   ('clip', '>=4'): (1, 0.), ('clip', '<2'): (1, 1.), ('clip', 'diffuse'): (1, 0.)}
    f = size_frame(rows)
    assert f.bin.tolist() == ['<2', '>=4', 'diffuse'] and f.ctglip_ahead.tolist() == [0, 1, 1]
