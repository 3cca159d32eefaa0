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
    assert cfg['seed'] == 0 and cfg['preset'] == 'cpu-demo' and cfg['synth']['n'] == 320
    assert cfg['ctglip']['train']['steps'] == cfg['clip']['train']['steps'] and cfg['ctglip']['model'] == cfg['clip']['model']
    assert res['protocol']['selected_on'] == 'valid' and res['clip']['text_coverage'] == 1.0
    assert set(res['ctglip']['organ_top1_slabs']) == {'40', '80', '160'}


def test_no_typed_demo_numbers_in_prose():
    "Outside the printed table, the README carries no three-decimal numbers (they would be typed)."
    res = json.loads((ROOT/'results'/'demo_seed0.json').read_text())
    readme = (ROOT/'README.md').read_text().replace(headline(res), '')
    prose = re.sub(r'```.*?```', '', readme, flags=re.S)
    assert not re.findall(r'\b0\.\d{3}\b', prose), re.findall(r'\b0\.\d{3}\b', prose)
