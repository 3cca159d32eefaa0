"""tools/ceiling_probe.py: its options, and one tiny run with the generator's labels (the measurement itself is not run by CI)."""
import importlib.util, json
from pathlib import Path

import pytest
import torch

from ctglip.core import CtglipError

TOOL = Path(__file__).resolve().parents[1]/'tools'/'ceiling_probe.py'


@pytest.fixture(scope='module')
def probe():
    spec = importlib.util.spec_from_file_location('ceiling_probe', TOOL); m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
    n = torch.get_num_threads(); yield m
    torch.set_num_threads(n)                 # the tool runs on one thread


def test_synth_settings(probe):
    got = probe.synth_settings(['phases=[["portal", 1]]', 'deform_mm=2', 'style="sectioned"'])
    assert got == dict(phases=(('portal', 1),), deform_mm=2, style='sectioned')
    with pytest.raises(CtglipError, match='FIELD one of'): probe.synth_settings(['bogus=1'])
    with pytest.raises(CtglipError, match='FIELD one of'): probe.synth_settings(['deform_mm'])
    with pytest.raises(CtglipError, match='not JSON'): probe.synth_settings(['deform_mm=two'])


def test_tiny_generator_run(probe, tmp_path):
    base = ['--synth', str(tmp_path/'set'), '--n', '40', '--prevalence', '4', '--synth-set', 'phases=[["portal", 1]]', 'fov_kinds=[["whole", 1]]',
            '--steps', '2', '--n-boot', '20']
    assert probe.main(base + ['--out', str(tmp_path/'all.json')]) == 0
    r = json.loads((tmp_path/'all.json').read_text())
    assert r['tasks'] and 0 <= r['mean']['auc'] <= 1 and 0 <= r['histogram']['auc'] <= 1 and len(r['losses']) == 2
    one = r['tasks'][0]
    assert probe.main(base + ['--tasks', one, '--out', str(tmp_path/'one.json')]) == 0
    assert json.loads((tmp_path/'one.json').read_text())['tasks'] == [one]
    with pytest.raises(CtglipError, match='not among'): probe.main(base + ['--tasks', 'liver: no such finding'])
