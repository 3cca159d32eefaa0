"""Run every notebook in nbs/ as one pytest case, the way `nbdev_test` does (same skip flags).

Cells flagged `#| data` run when the licensed reference data is present (../shared/data or
$CTGLIP_SHARED_DATA) and are skipped otherwise; `#| slow` and `#| gpu` cells are skipped unless
CTGLIP_TEST_FLAGS names them (e.g. CTGLIP_TEST_FLAGS="slow gpu").
"""
import os
from pathlib import Path

import pytest
from nbdev.config import get_config
import nbdev.test as nbt

from ctglip.core import shared_data_dir

ROOT = Path(__file__).resolve().parent.parent
NBS = sorted(p for p in (ROOT/'nbs').glob('*.ipynb') if not p.name.startswith(('_', '.')))


def _flags():
    skip = set(get_config(path=ROOT).tst_flags.split())
    force = set(os.environ.get('CTGLIP_TEST_FLAGS', '').split())
    if shared_data_dir() is not None: force.add('data')
    return sorted(skip), sorted(force)


@pytest.mark.parametrize('nb', NBS, ids=[p.stem for p in NBS])
def test_notebook(nb):
    skip, force = _flags()
    cwd = os.getcwd()
    try:
        ok, secs = nbt.test_nb(nb, skip_flags=skip, force_flags=force, basepath=ROOT)
    finally:
        os.chdir(cwd)
    assert ok, f"{nb.name} failed (traceback above)"
