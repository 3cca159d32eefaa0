"""The documentation pages render offline and their figures draw in a real headless browser.

Every notebook is rendered to HTML with its saved outputs (`.ci/render_docs.py`, no quarto, no
network): a figure is drawn by the HTML fallback saved with it, which loads `plotly.min.js` from the
page's folder. Chromium loads each page that holds figures, and the test counts the drawn plotly
figures in the live DOM. The other tests check what the site and JupyterLab read from the notebooks:
saved outputs, offline figure fallbacks, a kernelspec, the sidebar's sections. Screenshots of the home page and of the figure pages are kept in
`artifacts/docs/`. Skipped where Chromium is not installed (`apt-get install chromium`).
"""
import json, re, shutil, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'.ci'))
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--hide-scrollbars', '--virtual-time-budget=8000']
NBS = sorted((ROOT/'nbs').glob('*.ipynb'))
PLOTLY = 'application/vnd.plotly.v1+json'
# notebooks whose figures still lack a saved fallback (run `python .ci/plotly_fallback.py` on them)
FALLBACK_PENDING = set()


def _nb(path): return json.loads(path.read_text())


def _n_figures(nb):
    return sum(PLOTLY in o.get('data', {}) for c in _nb(nb)['cells'] for o in c.get('outputs', []))


def test_figures_saved_with_an_offline_fallback():
    for nb in NBS:
        if nb.stem in FALLBACK_PENDING: continue
        for c in _nb(nb)['cells']:
            for o in c.get('outputs', []):
                data = o.get('data', {})
                if PLOTLY not in data: continue
                assert 'text/html' in data, f'{nb.name}: a figure without an HTML fallback (python .ci/plotly_fallback.py)'
                html = ''.join(data['text/html'])
                assert 'src="plotly.min.js"' in html and 'https://' not in html, f'{nb.name}: the fallback loads plotly.js from elsewhere'


def test_notebooks_name_their_kernel():
    for nb in NBS:
        ks = _nb(nb)['metadata'].get('kernelspec', {})
        assert (ks.get('name'), ks.get('language')) == ('python3', 'python'), f'{nb.name}: no python3 kernelspec'


def test_every_page_has_outputs():
    for nb in NBS:
        cells = [c for c in _nb(nb)['cells'] if c['cell_type'] == 'code' and '#| export' not in ''.join(c['source'])]
        assert not cells or any(c.get('outputs') for c in cells), f'{nb.name}: no saved outputs'


def test_sidebar_has_sections_and_every_page():
    import yaml
    side = yaml.safe_load((ROOT/'nbs'/'sidebar.yml').read_text())['website']['sidebar']['contents']
    sections = [e for e in side if isinstance(e, dict)]
    pages = [e for e in side if isinstance(e, str)] + [p for s in sections for p in s['contents']]
    test = sorted(pages) == sorted(nb.name for nb in NBS)
    assert len(sections) >= 5 and test, f'sidebar: {len(sections)} sections; missing {set(nb.name for nb in NBS) - set(pages)}'
    # one Quarto config: the top-level _quarto.yml, which nbdev reads through the nbs/_quarto.yml link
    assert (ROOT/'nbs'/'_quarto.yml').is_symlink() and (ROOT/'nbs'/'_quarto.yml').resolve() == (ROOT/'_quarto.yml').resolve()
    q = yaml.safe_load((ROOT/'_quarto.yml').read_text())
    assert 'plotly.min.js' in q['project']['resources'] and 'write_plotlyjs' in q['project']['pre-render']


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
        html = pages[name].read_text()
        assert not re.search(r'src="https?://[^"]*plotly', html), f'{name}: the page loads plotly.js from the network'
        dom = _chromium(tmp_path/'profile', '--dump-dom', pages[name].as_uri()).stdout
        assert '<h1' in dom, f'{name}: page did not load'
        drawn = dom.count('plot-container plotly')  # one per figure that plotly.js drew
        assert drawn >= _n_figures(nb), f'{name}: {drawn} of {_n_figures(nb)} figures drawn'
        _chromium(tmp_path/'profile', '--window-size=1200,2400', f'--screenshot={art/(name + ".png")}', pages[name].as_uri())
        assert (art/f'{name}.png').stat().st_size > 10_000
