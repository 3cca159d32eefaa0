"""The documentation pages render offline and their figures draw in a real headless browser.

Every notebook is rendered to HTML with its saved outputs (`.ci/render_docs.py`, no quarto, no
network); Chromium loads each page that holds figures, and the test counts the drawn plotly
figures in the live DOM. Screenshots of the home page and of the figure pages are kept in
`artifacts/docs/`. Skipped where Chromium is not installed (`apt-get install chromium`).
"""
import json, shutil, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'.ci'))
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--hide-scrollbars', '--virtual-time-budget=8000']
NBS = sorted((ROOT/'nbs').glob('*.ipynb'))


def _n_figures(nb):
    return sum('application/vnd.plotly.v1+json' in o.get('data', {}) for c in json.loads(nb.read_text())['cells'] for o in c.get('outputs', []))


def _chromium(tmp, *args):
    return subprocess.run([CHROMIUM, *FLAGS, f'--user-data-dir={tmp}', *args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason='chromium is not installed')
def test_pages_render_offline_with_figures(tmp_path):
    from render_docs import render
    art = ROOT/'artifacts'/'docs'; art.mkdir(parents=True, exist_ok=True)
    pages = {nb.stem: render(nb, tmp_path) for nb in NBS}
    assert set(pages) >= {'index', '00_core', '10_data.volume'}
    for name in ['index'] + [nb.stem for nb in NBS if _n_figures(nb)]:
        nb = ROOT/'nbs'/f'{name}.ipynb'
        dom = _chromium(tmp_path/'profile', '--dump-dom', pages[name].as_uri()).stdout
        assert '<h1' in dom, f'{name}: page did not load'
        drawn = dom.count('plot-container plotly')  # one per figure that plotly.js drew
        assert drawn >= _n_figures(nb), f'{name}: {drawn} of {_n_figures(nb)} figures drawn'
        _chromium(tmp_path/'profile', '--window-size=1200,2400', f'--screenshot={art/(name + ".png")}', pages[name].as_uri())
        assert (art/f'{name}.png').stat().st_size > 10_000
