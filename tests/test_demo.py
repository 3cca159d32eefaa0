"`ctglip demo` end to end at a miniature size, and `ctglip predict` on the runs it writes."
import json
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
    for f in ('metrics.json', 'report.html', 'per_task.csv', 'zeroshot_scores.csv', 'ctglip/checkpoint.json', 'clip/checkpoint.json'):
        assert (demo_dir/f).exists(), f
    m = json.loads((demo_dir/'metrics.json').read_text())
    assert {'organ_top1', 'abnormality_auc_mean', 'abnormality_f1_mean'} <= set(m['ctglip'])
    assert {'abnormality_auc_mean', 'abnormality_f1_mean'} <= set(m['clip'])
    assert m['data']['n_train'] > 0 and m['data']['n_test'] > 0 and m['config']['preset'] == 'tiny'
    html = (demo_dir/'report.html').read_text()
    assert 'CT-GLIP' in html and html.count('plotly.js v') == 1   # plotly.js inlined exactly once

@pytest.mark.parametrize('model', ['ctglip', 'clip'])
def test_predict_on_demo_run(demo_dir, tmp_path, model, capsys):
    case = embedded_case(); out = tmp_path/'out.json'
    rep = tmp_path/'report.txt'; rep.write_text('The liver contains a 2 cm cyst. The spleen is normal.')
    assert predict_cli([str(demo_dir/model), str(case['image']), str(case['mask']), '--report', str(rep), '--out', str(out), '--top', '3']) == 0
    res = json.loads(out.read_text())
    assert set(res) == {'organs'} and 'liver' in res['organs']
    liver = res['organs']['liver']
    assert isinstance(liver['predicted'], str) and 0 <= liver['score'] <= 1
    assert 0 < len(liver['abnormalities']) <= 3 and all(0 <= v <= 1 for v in liver['abnormalities'].values())
    assert 'liver' in capsys.readouterr().out

def test_predict_errors(demo_dir, tmp_path):
    case = embedded_case()
    with pytest.raises(CtglipError, match='nope.nii.gz'): predict_cli([str(demo_dir/'ctglip'), str(tmp_path/'nope.nii.gz'), str(case['mask'])])
    with pytest.raises(CtglipError, match='not a ctglip run'): predict_cli([str(tmp_path), str(case['image']), str(case['mask'])])
