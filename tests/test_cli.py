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
    r = run('organs', 'data/example_ct.nii.gz', 'data/example_seg_fast_force_split.nii.gz', '--csv', tmp_path/'o.csv', '--version', 'v2')   # the older flag name
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


def one_line(r, *needles):
    "The command failed with exit status 2 and one line on stderr holding every needle."
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert r.stderr.count('\n') == 1 and 'Traceback' not in r.stderr, r.stderr
    for n in needles: assert n in r.stderr, (n, r.stderr)


CASE = ('data/example_ct.nii.gz', 'data/example_seg_fast_force_split.nii.gz')


def test_labels_header_only_and_out_folder(tmp_path):
    (tmp_path/'r.csv').write_text('VolumeName,Findings_EN,Impressions_EN\n')
    one_line(run('labels', tmp_path/'r.csv', '--out', tmp_path/'o.csv'), 'r.csv', 'no reports')
    (tmp_path/'s.csv').write_text('VolumeName,Findings_EN,Impressions_EN\na_1.nii.gz,Cardiomegaly.,\n')
    one_line(run('labels', tmp_path/'s.csv', '--out', tmp_path), '--out is a folder')
    assert run('labels', tmp_path/'s.csv', '--out', tmp_path/'o.csv').returncode == 0


def test_output_paths_of_the_wrong_kind(tmp_path):
    f = tmp_path/'file.txt'; f.write_text('x')
    one_line(run('organs', *CASE, '--csv', tmp_path), '--csv is a folder')
    one_line(run('predict', 'no_run', *CASE, '--out', tmp_path), '--out is a folder')
    one_line(run('predict', 'no_run', *CASE, '--out', f/'o.json'), 'is a file, not a folder')
    one_line(run('synth', '--out', f, '--n', '1'), '--out is a file', 'file.txt')
    one_line(run('embed', 'no_run', '--data', tmp_path, '--out', tmp_path), '--out is a folder')
    assert f.read_text() == 'x'


def test_predict_device_the_machine_lacks():
    import torch
    if torch.cuda.is_available(): return
    one_line(run('predict', 'no_run', *CASE, '--device', 'cuda'), '--device cuda', 'no CUDA GPU')


def test_image_and_mask_swapped():
    one_line(run('organs', CASE[1], CASE[0]), 'example_ct.nii.gz', 'the image comes first')


def test_unknown_split_lists_the_splits(tmp_path):
    from ctglip.data.layout import Scan, write_scans
    from ctglip.data.dataset import DataPaths, empty_split
    write_scans([Scan('train_1_a_1', 'train', 'x.nii.gz'), Scan('valid_1_a_1', 'valid', 'y.nii.gz')], tmp_path/'scans.jsonl')
    e = str(empty_split(DataPaths(tmp_path/'pairs.jsonl', tmp_path/'scans.jsonl', tmp_path/'cache'), 'tset'))
    assert "no split 'tset'" in e and 'train, valid' in e and 'pairs' not in e


def test_flags_one_vocabulary():
    helps = {c: run(c, '--help').stdout for c in ('organs', 'predict', 'synth', 'cache', 'pairs', 'embed')}
    for c, h in helps.items():
        assert '--mask-version' in h or c in ('embed',), c       # one name for the mask id set
        assert '--version ' not in h and '--base-version' not in h, c   # the older spellings parse but are not listed
    for c in ('synth', 'cache', 'prepare', 'demo', 'pairs'):
        assert '0 = all cores' in run(c, '--help').stdout.replace('\n', ' ').replace('  ', ' '), c
    assert 'OUT_DIR' not in helps['synth'] and '--out' in helps['synth']
    assert 'model.safetensors' in helps['predict'] and 'default auto' in helps['predict']
    from ctglip.config import DATA_HELP
    for c in ('cache', 'pairs', 'prepare', 'train', 'evaluate', 'embed'):   # one name and one help text for the dataset
        h = ' '.join(run(c, '--help').stdout.split())
        assert '--data' in h and DATA_HELP in h and 'dataset_dir' not in h, c


def test_synth_older_spellings(tmp_path):
    r = run('synth', tmp_path/'s', '--n', '1', '--size', 'tiny', '--workers', '1', '--base-version', 'v2', '--no-progress')
    assert r.returncode == 0 and (tmp_path/'s'/'manifest.json').exists(), r.stderr
    one_line(run('synth', '--n', '1'), 'give the output folder')
