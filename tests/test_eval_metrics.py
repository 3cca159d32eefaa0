"Property checks of ctglip.eval.metrics against scikit-learn on many random seeds and edge cases."
import numpy as np, pytest
from sklearn import metrics as skm
from ctglip.core import CtglipError
from ctglip.eval.metrics import (roc_auc, roc_curve, youden_threshold, binary_metrics, binary_report,
                                 topk_accuracy, confusion, recall_at_k)

@pytest.mark.parametrize('seed', range(20))
def test_against_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300)); y = rng.integers(0, 2, n); y[:2] = [0, 1]
    s = rng.normal(size=n) + y * rng.uniform(0, 2)
    if seed % 2: s = np.round(s, 1)   # ties
    assert np.isclose(roc_auc(y, s), skm.roc_auc_score(y, s))
    fpr, tpr, thr = roc_curve(y, s); sf, st, _ = skm.roc_curve(y, s, drop_intermediate=False)
    assert np.allclose(fpr, sf) and np.allclose(tpr, st)
    m = binary_metrics(y, s); p = s >= m['threshold']
    assert np.isclose(m['f1'], skm.f1_score(y, p)) and np.isclose(m['accuracy'], skm.accuracy_score(y, p))
    assert np.isclose(m['sensitivity'] + m['specificity'] - 1, np.max(st - sf))

def test_edge_cases():
    assert np.isnan(roc_auc([0, 0, 0], [1, 2, 3]))
    assert roc_auc([0, 1], [1, 1]) == 0.5
    r = binary_report([0, 1, 0, 1], [.1, .9, .2, .8], n_boot=50)
    assert r['auc'] == 1 and r['f1'] == 1 and r['auc_lo'] == 1
    with pytest.raises(CtglipError): roc_auc([0, 1], [0.1])
    assert youden_threshold([0, 1], [0.2, 0.7]) == 0.7

def test_bootstrap_seeded():
    rng = np.random.default_rng(0); y = rng.integers(0, 2, 100); s = y + rng.normal(size=100)
    a, b, c = binary_report(y, s, 300, seed=1), binary_report(y, s, 300, seed=1), binary_report(y, s, 300, seed=2)
    assert a == b and a != c

def test_multiclass_and_retrieval():
    rng = np.random.default_rng(1); L = rng.normal(size=(50, 7)); t = rng.integers(0, 7, 50)
    for k in (1, 2, 5): assert np.isclose(topk_accuracy(L, t, (k,))[f'top{k}'], skm.top_k_accuracy_score(t, L, k=k, labels=range(7)))
    assert (confusion(L.argmax(1), t, 7) == skm.confusion_matrix(t, L.argmax(1), labels=range(7))).all()
    assert recall_at_k(np.eye(4) * 2 - 1, (1,)) == {'R@1': 1.0}
