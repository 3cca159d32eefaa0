"""The installed `ctglip` console command, run as a user would."""
import csv, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXE = Path(sys.executable).parent/'ctglip'


def run(*args):
    return subprocess.run([str(EXE), *map(str, args)], capture_output=True, text=True, cwd=ROOT)


def test_help_lists_commands():
    r = run('--help')
    assert r.returncode == 0 and 'organs' in r.stdout and 'demo' in r.stdout


def test_organs_on_embedded_case(tmp_path):
    r = run('organs', 'data/example_ct.nii.gz', 'data/example_seg_fast_force_split.nii.gz', '--csv', tmp_path/'o.csv')
    assert r.returncode == 0, r.stderr
    rows = {row['organ']: row for row in csv.DictReader(open(tmp_path/'o.csv'))}
    assert len(rows) == 61
    assert abs(float(rows['liver']['volume_ml']) - 1126) < 3 and abs(float(rows['liver']['mean_hu']) - 44.5) < 1
    assert abs(float(rows['spleen']['volume_ml']) - 261) < 2 and abs(float(rows['kidney_right']['volume_ml']) - 193) < 2
    assert 'liver' in r.stdout.split('\n', 1)[1]


def test_organs_bad_mask_is_one_line(tmp_path):
    (tmp_path/'m.nii.gz').write_bytes(b'\x1f\x8b broken')
    r = run('organs', 'data/example_ct.nii.gz', tmp_path/'m.nii.gz')
    assert r.returncode == 2
    assert r.stderr.count('\n') == 1 and 'm.nii.gz' in r.stderr and 'Traceback' not in r.stderr
