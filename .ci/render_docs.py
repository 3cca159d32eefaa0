"""Render the notebooks to offline HTML pages (no quarto, no internet).

Each notebook becomes `OUT/<name>.html` with its saved outputs. A plotly figure is shown by the HTML
fallback saved with it (`ctglip.viz.use_offline_figures`), which loads `plotly.min.js` from the page's
folder: the script writes that file once into OUT. A figure saved without a fallback gets one here.
Usage: python .ci/render_docs.py [OUT_DIR] [NOTEBOOK ...]
"""
import copy, sys
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

from ctglip.viz import PLOTLY_MIME, figure_html, write_plotlyjs

ROOT = Path(__file__).resolve().parent.parent


def _html_figures(nb):
    "`nb` with every plotly output shown by its HTML fallback; the number of figures."
    nb = copy.deepcopy(nb); n = 0
    for cell in nb.cells:
        for o in cell.get('outputs', []):
            data = o.get('data', {})
            if PLOTLY_MIME in data:
                if 'text/html' not in data: data['text/html'] = figure_html(data[PLOTLY_MIME])
                del data[PLOTLY_MIME]; n += 1
    return nb, n


def render(nb_path: Path, out_dir: Path) -> Path:
    nb, n = _html_figures(nbformat.read(nb_path, as_version=4))
    body, _ = HTMLExporter(template_name='lab').from_notebook_node(nb)
    if n: write_plotlyjs(out_dir)
    out = out_dir/(nb_path.stem + '.html'); out.write_text(body, encoding='utf-8')
    return out


if __name__ == '__main__':
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT/'_docs_offline'
    out_dir.mkdir(parents=True, exist_ok=True)
    nbs = [Path(o) for o in sys.argv[2:]] or sorted((ROOT/'nbs').glob('*.ipynb'))
    for p in nbs: print(render(p, out_dir))
