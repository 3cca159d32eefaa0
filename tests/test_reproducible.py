"""Two runs of `ctglip demo` on one machine write the same metrics.json (timing and machine fields aside).

What makes it so, and what this test pins: SynthCT cases are drawn from (seed, case index) alone, whichever
process makes them; every augmentation draw comes from a generator seeded by (train.seed, stream position, scan);
weights, scan order and the ceiling's batches are seeded; the demo fixes the torch thread count; pooling sums are
segment reductions in a fixed order; the bootstrap is seeded.
"""
import json, os, subprocess, sys

import pytest

ARGS = ['--n', '24', '--steps', '6', '--preset', 'tiny', '--device', 'cpu', '--n-boot', '30', '--min-pos', '1', '--no-progress', 'train.batch_size=4']


def _demo(out):
    "One demo in a fresh process (as a user runs it twice), with the synth workers on."
    env = {k: v for k, v in os.environ.items() if k != 'OMP_NUM_THREADS'}
    env.update(HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1')
    r = subprocess.run([sys.executable, '-c', 'import sys; from ctglip.cli import main; sys.exit(main(sys.argv[1:]))', 'demo', '--out', str(out), '--workers', '2', *ARGS], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    m = json.loads((out/'metrics.json').read_text())
    return json.dumps({k: v for k, v in m.items() if k not in ('timing_s', 'machine')}, sort_keys=True)


def test_two_demo_runs_write_the_same_metrics(tmp_path):
    a, b = _demo(tmp_path/'a'), _demo(tmp_path/'b')
    assert a == b
    assert '"abnormality_auc_mean"' in a
