"`ctglip demo` end to end at a miniature size, and `ctglip predict` on the runs it writes."
import json, os, subprocess, sys
import nibabel as nib
import numpy as np
import pytest
from ctglip.core import embedded_case, CtglipError
from ctglip.demo import demo_cli
from ctglip.eval.predict import predict_cli

@pytest.fixture(scope='module')
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp('demo')/'run'
    rc = demo_cli(['--out', str(out), '--n', '16', '--steps', '4', '--preset', 'tiny', '--device', 'cpu', '--workers', '0',
                   '--n-boot', '50', '--min-pos', '1', '--no-progress', 'train.batch_size=4'])
    assert rc == 0
    return out

def test_demo_outputs(demo_dir):
    for f in ('metrics.json', 'report.html', 'per_task.csv', 'zeroshot_scores.csv', 'ctglip/checkpoint.json', 'clip/checkpoint.json', 'ctglip/vocabulary.json'):
        assert (demo_dir/f).exists(), f
    m = json.loads((demo_dir/'metrics.json').read_text())
    assert {'organ_top1', 'abnormality_auc_mean', 'abnormality_f1_mean'} <= set(m['ctglip'])
    assert {'abnormality_auc_mean', 'abnormality_f1_mean'} <= set(m['clip'])
    assert m['data']['n_train'] > 0 and m['data']['n_test'] > 0 and m['config']['preset'] == 'tiny'
    assert m['protocol']['labels'] == 'generator' and isinstance(m['data']['hidden_test_findings'], int)   # scored against the generator's truth
    assert 'abnormality_auc_mean_parsed_labels' in m['ctglip'] and 'abnormality_auc_mean_parsed_labels' in m['clip']   # the secondary row
    html = (demo_dir/'report.html').read_text()
    assert 'CT-GLIP' in html and html.count('plotly.js v') == 1   # plotly.js inlined exactly once

@pytest.mark.parametrize('model', ['ctglip', 'clip'])
def test_predict_on_demo_run(demo_dir, tmp_path, model, capsys):
    case = embedded_case(); out = tmp_path/'out.json'
    rep = tmp_path/'report.txt'; rep.write_text('The liver contains a 2 cm cyst. The spleen is normal.')
    assert predict_cli([str(demo_dir/model), str(case['image']), str(case['mask']), '--report', str(rep), '--out', str(out), '--top', '3']) == 0
    res = json.loads(out.read_text())
    assert set(res) == {'checkpoint', 'step', 'inputs', 'config', 'organs'} and 'liver' in res['organs']
    assert res['step'] == 4 and res['config']['preset'] == 'tiny' and res['inputs']['report'] == str(rep) and res['inputs']['mask_version'] == 'v2'
    assert all(set(v) == {'predicted', 'score', 'abnormalities', 'report'} for v in res['organs'].values())
    liver = res['organs']['liver']
    assert isinstance(liver['predicted'], str) and 0 <= liver['score'] <= 1
    assert 0 < len(liver['abnormalities']) <= 3 and all(0 <= v <= 1 for v in liver['abnormalities'].values())
    assert liver['report'] == ['The liver contains a 2 cm cyst.'] and res['organs']['spleen']['report'] == ['The spleen is normal.']
    assert 'liver' in capsys.readouterr().out

def test_predict_errors(demo_dir, tmp_path):
    case = embedded_case()
    with pytest.raises(CtglipError, match='nope.nii.gz'): predict_cli([str(demo_dir/'ctglip'), str(tmp_path/'nope.nii.gz'), str(case['mask'])])
    with pytest.raises(CtglipError, match='not a ctglip run'): predict_cli([str(tmp_path), str(case['image']), str(case['mask'])])


def _slab(case, tmp_path, n=20):
    "The top `n` slices of the embedded scan and its mask, as a scan of their own (affine moved with the crop)."
    img, msk = nib.load(case['image']), nib.load(case['mask'])
    a, m = np.asarray(img.dataobj)[..., -n:], np.asarray(msk.dataobj)[..., -n:]
    aff = img.affine.copy(); aff[:3, 3] = (img.affine @ np.r_[0, 0, img.shape[2] - n, 1])[:3]
    nib.save(nib.Nifti1Image(a.astype(np.int16), aff), tmp_path/'slab.nii.gz'); nib.save(nib.Nifti1Image(m.astype(np.uint8), aff), tmp_path/'slab_seg.nii.gz')
    return tmp_path/'slab.nii.gz', tmp_path/'slab_seg.nii.gz'

def test_predict_on_a_short_slab(demo_dir, tmp_path):
    img, msk = _slab(embedded_case(), tmp_path)
    assert predict_cli([str(demo_dir/'ctglip'), str(img), str(msk), '--out', str(tmp_path/'o.json')]) == 0
    res = json.loads((tmp_path/'o.json').read_text())['organs']
    assert 'liver' in res and 'urinary_bladder' not in res and 'femur' not in res     # the top 20 slices (60 mm) hold the upper abdomen, not the pelvis

def test_predict_on_a_large_scan_in_laptop_memory(demo_dir, tmp_path):
    "A 512 x 512 x 400 int16 scan (0.7 x 0.7 x 1 mm, as CT-RATE ships) goes through `ctglip predict` in a few GB."
    case = embedded_case(); img, msk = nib.load(case['image']), nib.load(case['mask'])
    src = [np.minimum((np.arange(n) * s / o).astype(int), k - 1) for n, s, o, k in zip((512, 512, 400), (0.7, 0.7, 1.0), (3., 3., 3.), img.shape)]
    ix = np.ix_(*src)
    aff = img.affine @ np.diag([0.7 / 3, 0.7 / 3, 1 / 3, 1])
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.int16)[ix], aff), tmp_path/'big.nii.gz')
    nib.save(nib.Nifti1Image(np.asarray(msk.dataobj, dtype=np.uint8)[ix], aff), tmp_path/'big_seg.nii.gz')
    code = ("import resource, sys; from ctglip.eval.predict import predict_cli; "
            f"rc = predict_cli([{str(demo_dir/'ctglip')!r}, {str(tmp_path/'big.nii.gz')!r}, {str(tmp_path/'big_seg.nii.gz')!r}, '--out', {str(tmp_path/'b.json')!r}]); "
            "print('peak_rss_mb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024); sys.exit(rc)")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert r.returncode == 0, r.stderr[-2000:]
    peak = int(r.stdout.split('peak_rss_mb')[-1]); print(f"predict on 512 x 512 x 400: peak RSS {peak} MB")
    assert peak < 6000, peak
    assert {'liver', 'kidney_left', 'spleen'} <= set(json.loads((tmp_path/'b.json').read_text())['organs'])


def test_predict_takes_the_model_file(demo_dir, tmp_path, capsys):
    "A run folder, a checkpoint folder and the model.safetensors in it name the same model."
    case = embedded_case(); ck = json.loads((demo_dir/'ctglip'/'checkpoint.json').read_text())['latest']
    outs = []
    for i, r in enumerate([demo_dir/'ctglip', demo_dir/'ctglip'/ck, demo_dir/'ctglip'/ck/'model.safetensors']):
        assert predict_cli([str(r), str(case['image']), str(case['mask']), '--out', str(tmp_path/f'{i}.json')]) == 0
        outs.append(json.loads((tmp_path/f'{i}.json').read_text())['organs'])
    assert outs[0] == outs[1] == outs[2]
    head = capsys.readouterr().out.splitlines()[0]
    assert head.split() == ['organ', 'predicted', 'p', 'top', 'abnormalities', '(p)']


def test_embed_a_dataset(demo_dir, tmp_path):
    import pandas as pd
    from ctglip.eval.predict import embed_cli, SCAN_ROW
    out = tmp_path/'emb.csv.gz'
    assert embed_cli([str(demo_dir/'ctglip'), '--data', str(demo_dir/'data'), '--splits', 'test', '--out', str(out), '--no-progress']) == 0
    t = pd.read_csv(out); e = t.filter(regex=r'^e\d+$').values
    scans = {p.name.replace('.nii.gz', '') for p in (demo_dir/'data'/'dataset'/'test').rglob('*.nii.gz')}
    assert set(t.scan_id) == scans and (t.organ == SCAN_ROW).sum() == len(scans)
    assert not t.duplicated(['scan_id', 'organ']).any() and 'liver' in set(t.organ)
    assert np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-4)
