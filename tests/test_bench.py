"Every benchmark runs at --smoke size on the CPU and its fast-vs-baseline equality checks pass (no timing assertions)."
import os, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p.name for p in (ROOT/'bench').glob('*.py') if not p.name.startswith('_'))
# tables a script must print besides its main one
EXPECT = {'p1_preprocess.py': ('| speedup |', '| library |', 'zlib (stdlib)', 'ctglip slabs', '| stage |', 'whole cache_scan',
                               'added_by_one_volume_MB', 'core_hours_for_50000', '| workers |'),
          'p2_loader.py': ('| npz_float32_samples_per_s |', 'cached loader pair_map == one-mask-per-pair', '| aug_loader_samples_per_s |',
                           '| train_samples_per_s |', '| loader_over_train |', 'seeded per sample', 'differs from the evaluation crop'),
          'p2_aug.py': ('P2a scan transform', '| ctglip_train_ms |', 'evaluation = plain centred crop')}


@pytest.mark.parametrize('script', SCRIPTS)
def test_bench_smoke(script):
    env = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', TQDM_DISABLE='1', CUDA_VISIBLE_DEVICES='')
    r = subprocess.run([sys.executable, str(ROOT/'bench'/script), '--smoke'], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert 'EQUALITY CHECK FAILED' not in r.stdout and 'check ok' in r.stdout and '|---' in r.stdout
    for s in EXPECT.get(script, ()): assert s in r.stdout, s

