"Training end to end through the command line: DDP under torchrun equals one process; kill-and-resume is exact."
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path

import pytest

from ctglip.config import get_config
from ctglip.synth.core import generate

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', TQDM_DISABLE='1', PYTHONHASHSEED='0')


def _metrics(run): return [json.loads(l) for l in (Path(run)/'metrics.jsonl').read_text().splitlines() if l.strip()]


def _train_cmd(data, out, *over):
    return [sys.executable, '-m', 'ctglip.train', '--data', str(data), '--out', str(out), '--preset', 'tiny', '--no-val', *over]


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    "A small SynthCT folder (as `ctglip synth` writes it) whose pairs and cache are built once, by a first short run, into a work folder."
    d = generate(tmp_path_factory.mktemp('synth')/'ds', 8, seed=0, size='demo', workers=1)
    ENV['CTGLIP_CACHE'] = str(d.parent/'work')
    subprocess.run(_train_cmd(d, d.parent/'warm', 'steps=1'), check=True, env=ENV, capture_output=True)
    assert not (d/'pairs.jsonl').exists() and list((d.parent/'work').glob('*/pairs.jsonl'))   # derived files stay out of the data folder
    return d


def test_torchrun_two_ranks_equal_one_process(toy, tmp_path):
    # the readout's batch norm uses each rank's statistics under gloo (SyncBatchNorm is GPU-only): left out of this equality
    over = ['steps=4', 'batch_size=4', 'readout_norm=false']
    subprocess.run(_train_cmd(toy, tmp_path/'one', *over), check=True, env=ENV, capture_output=True)
    tr = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', str(29500 + os.getpid() % 1000)]
    r = subprocess.run(tr + _train_cmd(toy, tmp_path/'two', *over)[1:], env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = _metrics(tmp_path/'one'), _metrics(tmp_path/'two')
    assert [m['step'] for m in a] == [m['step'] for m in b] == [1, 2, 3, 4]
    for x, y in zip(a, b):
        for k in ('loss', 'loss_organ', 'loss_abn'): assert abs(x[k] - y[k]) < 1e-4 * max(1, abs(x[k])), (k, x, y)


@pytest.fixture(scope='module')
def full_run(toy, tmp_path_factory):
    "The uninterrupted 40-step run that the killed runs are compared with (dropout on: torch's generator matters)."
    out = tmp_path_factory.mktemp('full')/'run'
    subprocess.run(_train_cmd(toy, out, *RESUME), check=True, env=ENV, capture_output=True)
    return _metrics(out)

RESUME = ['steps=40', 'ckpt_every=4', 'dropout=0.2']   # steps to spare after the kill point: a busy machine may poll the log late

@pytest.mark.parametrize('sig,at', [(signal.SIGKILL, 6), (signal.SIGINT, 9)])   # between checkpoints (from step 4, from step 8)
def test_kill_and_resume_reproduces_losses(toy, full_run, tmp_path, sig, at):
    # Ctrl-C as in a terminal: a job started in the background of a non-interactive shell (as CI may be) inherits SIGINT ignored
    p = subprocess.Popen(_train_cmd(toy, tmp_path/'cut', *RESUME), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    log, t0 = tmp_path/'cut'/'metrics.jsonl', time.time()
    while not (log.exists() and len(log.read_text().splitlines()) >= at):
        assert p.poll() is None and time.time() - t0 < 120, f'run ended before step {at}'
        time.sleep(0.005)
    p.send_signal(sig); p.wait()
    assert json.loads((tmp_path/'cut'/'checkpoint.json').read_text())['step'] < 40
    r = subprocess.run(_train_cmd(toy, tmp_path/'cut', *RESUME), env=ENV, capture_output=True, text=True)   # without --resume: refused
    assert r.returncode == 2 and 'holds a run already: add --resume' in r.stderr, r.stderr[-2000:]
    subprocess.run(_train_cmd(toy, tmp_path/'cut', *RESUME, '--resume'), check=True, env=ENV, capture_output=True)
    b = _metrics(tmp_path/'cut')
    assert [m['step'] for m in b] == list(range(1, 41))
    assert [x['loss'] for x in full_run] == [y['loss'] for y in b]   # to the logged digit (a misplaced dropout draw moves the loss by 1e-2)


def test_existing_run_and_file_out_refused_before_data(toy, tmp_path):
    from ctglip.core import CtglipError
    from ctglip.train import train_cli
    warm = toy.parent/'warm'; before = (warm/'metrics.jsonl').read_text()
    with pytest.raises(CtglipError, match='holds a run already: add --resume to continue it, or choose another --out folder'):
        train_cli(['--data', str(toy), '--work', str(tmp_path/'w1'), '--out', str(warm), 'steps=2'])
    (tmp_path/'f').write_text('x')
    with pytest.raises(CtglipError, match='is a file, not a run folder'):
        train_cli(['--data', str(toy), '--work', str(tmp_path/'w2'), '--out', str(tmp_path/'f'), 'steps=2'])
    assert (warm/'metrics.jsonl').read_text() == before and not (tmp_path/'w1').exists() and not (tmp_path/'w2').exists()


def test_bad_override_is_one_line_error(toy, tmp_path):
    from ctglip.core import CtglipError
    from ctglip.train import train_cli
    with pytest.raises(CtglipError, match="unknown config key 'train.lrr'"): train_cli(['--data', str(toy), '--out', str(tmp_path), 'train.lrr=1'])
    with pytest.raises(CtglipError, match='data not found'): train_cli(['--data', str(tmp_path/'nope'), '--out', str(tmp_path)])
    with pytest.raises(CtglipError, match='not a dataset folder'): train_cli(['--data', str(tmp_path), '--out', str(tmp_path/'run')])


def test_synth_then_train_cli(tmp_path):
    "`ctglip synth D` then `ctglip train --data D` runs, with pairs and cache in the work folder."
    exe = str(Path(sys.executable).parent/'ctglip')
    env = dict(ENV, CTGLIP_CACHE=str(tmp_path/'cache'))
    subprocess.run([exe, 'synth', str(tmp_path/'D'), '--n', '6', '--workers', '1'], check=True, env=env, capture_output=True)
    r = subprocess.run([exe, 'train', '--preset', 'tiny', '--data', str(tmp_path/'D'), '--out', str(tmp_path/'R'), 'steps=2'],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'validation at step 2: ' in r.stdout, r.stdout   # the final validation numbers are printed
    assert (tmp_path/'R'/'checkpoint.json').exists() and list((tmp_path/'cache').glob('D-*/cache/*/manifest.json'))


def test_bad_scan_is_skipped_not_fatal(tmp_path):
    from ctglip.train import train
    d = generate(tmp_path/'ds', 6, seed=0, size='demo', workers=1)
    bad = sorted((d/'masks').glob('train_*'))[1]; bad.write_bytes(b'not a nifti')   # unreadable mask
    res = train(get_config('tiny', ['steps=3']), d, tmp_path/'run', work=tmp_path/'work', val_hook=None)
    man = json.loads(next((tmp_path/'work'/'cache').glob('*/manifest.json')).read_text())
    assert list(man['bad']) == [bad.name[:-len('.nii.gz')]] and res['steps'] == 3


def test_torchrun_refuses_unbuilt_work_folder_then_prepare(toy, tmp_path):
    "Under torchrun every rank refuses a work folder that is not built (naming the command); after `ctglip prepare` it trains and validates."
    fresh = tmp_path/'fresh'
    tr = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', str(29700 + os.getpid() % 200), '-m', 'ctglip.train']
    args = ['--data', str(toy), '--work', str(fresh), '--out', str(tmp_path/'run'), '--preset', 'tiny', 'steps=2', 'batch_size=4', 'val_batch_size=1']
    r = subprocess.run(tr + args, env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and r.stderr.count('under torchrun the data must be built beforehand') == 2, r.stderr[-3000:]
    assert f"ctglip prepare --data {toy} --work {fresh} --preset tiny" in r.stderr and not fresh.exists()
    exe = str(Path(sys.executable).parent/'ctglip')
    p = subprocess.run([exe, 'prepare', '--data', str(toy), '--work', str(fresh), '--preset', 'tiny', '--workers', '1'], env=ENV, capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.startswith('ready: '), p.stderr[-2000:]
    r = subprocess.run(tr + args, env=ENV, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    val = [m for m in _metrics(tmp_path/'run') if 'val_n_scans' in m]
    n_valid = sum(1 for l in (fresh/'scans.jsonl').read_text().splitlines() if json.loads(l)['split'] == 'valid')
    assert len(val) == 1 and val[0]['step'] == 2 and val[0]['val_n_scans'] == n_valid >= 1   # every valid scan once (rank 1 has none here)


def test_tensorboard_beside_metrics_when_installed(toy, tmp_path):
    "With the optional `tensorboard` package, the metrics.jsonl numbers also go to RUN_DIR/tensorboard."
    pytest.importorskip('tensorboard')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    subprocess.run(_train_cmd(toy, tmp_path/'run', 'steps=3'), check=True, env=ENV, capture_output=True)
    ea = EventAccumulator(str(tmp_path/'run'/'tensorboard')); ea.Reload()
    assert [(e.step, round(e.value, 5)) for e in ea.Scalars('loss')] == [(m['step'], round(m['loss'], 5)) for m in _metrics(tmp_path/'run')]
