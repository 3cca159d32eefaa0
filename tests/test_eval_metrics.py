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


# --- scan-level bootstrap and paired comparison ----------------------------------------------
from ctglip.eval.metrics import (scan_counts, weighted_auc, weighted_at_threshold, scan_bootstrap, paired_bootstrap,
                                 youden_thresholds)


def _two_models(seed, n_scans=25, T=3, missing=.2):
    "Scans with one case per task (some cases missing), labels, and two noisy scorers."
    g = np.random.default_rng(seed); ids = np.repeat([f'scan{i:03d}' for i in range(n_scans)], T)
    y = np.full((n_scans * T, T), np.nan); rows = np.arange(n_scans * T); task = np.tile(np.arange(T), n_scans)
    keep = g.random(len(rows)) > missing
    y[rows[keep], task[keep]] = g.integers(0, 2, keep.sum())
    sa = np.where(np.isnan(y), np.nan, np.round(y + g.normal(0, .8, y.shape), 1))   # rounded: ties
    sb = np.where(np.isnan(y), np.nan, np.round(y + g.normal(0, 1.6, y.shape), 1))
    return sa, sb, y, ids


def _slow(sa, sb, y, ids, n_boot, seed, metric, ta=None, tb=None):
    "Explicit loop: list the cases of the drawn scans, score both models task by task with scikit-learn, subtract the means."
    inv, cnt = scan_counts(ids, n_boot, seed); diffs, per = [], []
    f = {'f1': skm.f1_score, 'accuracy': skm.accuracy_score}.get(metric)
    for c in cnt:
        rows = np.concatenate([np.repeat(np.flatnonzero(inv == k), n) for k, n in enumerate(c)])
        a, b = [], []
        for j in range(y.shape[1]):
            r = rows[~np.isnan(y[rows, j])]; yj = y[r, j].astype(int)
            if metric == 'auc':
                ok = len(set(yj)) == 2
                a.append(skm.roc_auc_score(yj, sa[r, j]) if ok else np.nan); b.append(skm.roc_auc_score(yj, sb[r, j]) if ok else np.nan)
            else:
                kw = dict(zero_division=0) if metric == 'f1' else {}
                a.append(f(yj, sa[r, j] >= ta[j], **kw)); b.append(f(yj, sb[r, j] >= tb[j], **kw))
        diffs.append(np.nanmean(a) - np.nanmean(b)); per.append(np.array(a) - np.array(b))
    return np.array(diffs), np.array(per)


@pytest.mark.parametrize('seed', range(3))
def test_weighted_metrics_equal_materialised_resamples(seed):
    sa, _, y, ids = _two_models(seed)
    m = ~np.isnan(y[:, 0]); inv, cnt = scan_counts(ids, 50, seed); W = cnt[:, inv[m]]
    yj, sj = y[m, 0].astype(int), sa[m, 0]
    ref = [skm.roc_auc_score(np.repeat(yj, w), np.repeat(sj, w)) if len(set(np.repeat(yj, w))) == 2 else np.nan for w in W]
    assert np.allclose(weighted_auc(yj, sj, W), ref, equal_nan=True)
    f1 = [skm.f1_score(np.repeat(yj, w), np.repeat(sj, w) >= .5, zero_division=0) for w in W]
    assert np.allclose(weighted_at_threshold(yj, sj, .5, W)['f1'], f1)


@pytest.mark.parametrize('seed', range(3))
def test_paired_bootstrap_matches_slow_loop(seed):
    sa, sb, y, ids = _two_models(seed)
    r = paired_bootstrap(sa, sb, y, ids, 'auc', n_boot=150, seed=seed)
    d, per = _slow(sa, sb, y, ids, 150, seed, 'auc')
    assert np.allclose(r['ci'], np.nanquantile(d, [.025, .975]))
    assert np.allclose([t['ci'] for t in r['per_task']], np.nanquantile(per, [.025, .975], axis=0).T)
    full = [skm.roc_auc_score(y[~np.isnan(y[:, j]), j], s[~np.isnan(y[:, j]), j]) for s in (sa, sb) for j in range(3)]
    assert np.isclose(r['estimate'], np.mean(full[:3]) - np.mean(full[3:]))
    ta, tb = youden_thresholds(y, sa), youden_thresholds(y, sb)   # any fixed thresholds
    for metric in ('f1', 'accuracy'):
        rf = paired_bootstrap(sa, sb, y, ids, metric, n_boot=150, seed=seed, thresholds_a=ta, thresholds_b=tb)
        assert np.allclose(rf['ci'], np.quantile(_slow(sa, sb, y, ids, 150, seed, metric, ta, tb)[0], [.025, .975]))


def test_paired_bootstrap_is_paired():
    sa, sb, y, ids = _two_models(7)
    same = paired_bootstrap(sa, sa, y, ids, 'auc', n_boot=500, seed=1)
    assert same['estimate'] == 0 and same['ci'] == [0.0, 0.0] and all(t['ci'] == [0.0, 0.0] for t in same['per_task'])
    t = youden_thresholds(y, sa)
    same_f1 = paired_bootstrap(sa, sa, y, ids, 'f1', n_boot=500, seed=1, thresholds_a=t, thresholds_b=t)
    assert same_f1['ci'] == [0.0, 0.0]
    # resampling scans, not rows: the draws of every task come from one set of scans per resample
    inv, cnt = scan_counts(ids, 20, 3)
    assert cnt.shape == (20, 25) and (cnt.sum(1) == 25).all()
    b = scan_bootstrap(y, sa, ids, n_boot=20, seed=3)
    j = 1; m = ~np.isnan(y[:, j])
    assert np.allclose(b['auc'][:, j], weighted_auc(y[m, j].astype(int), sa[m, j], cnt[:, inv[m]]), equal_nan=True)


def test_paired_bootstrap_rejects_bad_input():
    sa, sb, y, ids = _two_models(0)
    with pytest.raises(CtglipError, match='validation thresholds'): paired_bootstrap(sa, sb, y, ids, 'f1')
    with pytest.raises(CtglipError, match='unknown metric'): paired_bootstrap(sa, sb, y, ids, 'ppv')
    with pytest.raises(CtglipError, match='scan ids'): paired_bootstrap(sa, sb, y, ids[:-1])
    assert np.isnan(youden_thresholds(np.array([[0.], [0.]]), np.array([[.1], [.2]]))).all()
