"""Render the notebooks to self-contained offline HTML pages (no quarto, no internet).

Each notebook becomes `OUT/<name>.html` with its saved outputs; plotly figures stored with the
`plotly_mimetype` renderer are turned into HTML with plotly.js inlined once per page, so every
figure draws offline. Usage: python .ci/render_docs.py [OUT_DIR] [NOTEBOOK ...]
"""
import copy, json, sys
from pathlib import Path

import nbformat
import plotly.io as pio
from nbconvert import HTMLExporter
from plotly.offline import get_plotlyjs

ROOT = Path(__file__).resolve().parent.parent
PLOTLY = 'application/vnd.plotly.v1+json'


def _with_plotly_html(nb):
    nb = copy.deepcopy(nb); n = 0
    for cell in nb.cells:
        for o in cell.get('outputs', []):
            data = o.get('data', {})
            if PLOTLY in data:
                fig = data[PLOTLY] if isinstance(data[PLOTLY], dict) else json.loads(data[PLOTLY])
                data['text/html'] = pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=f'plotly-fig-{n}')
                del data[PLOTLY]; n += 1
    return nb, n


def render(nb_path: Path, out_dir: Path) -> Path:
    nb, n = _with_plotly_html(nbformat.read(nb_path, as_version=4))
    body, _ = HTMLExporter(template_name='lab').from_notebook_node(nb)
    if n: body = body.replace('</head>', f'<script type="text/javascript">{get_plotlyjs()}</script></head>', 1)
    out = out_dir/(nb_path.stem + '.html'); out.write_text(body, encoding='utf-8')
    return out


if __name__ == '__main__':
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT/'_docs_offline'
    out_dir.mkdir(parents=True, exist_ok=True)
    nbs = [Path(o) for o in sys.argv[2:]] or sorted((ROOT/'nbs').glob('*.ipynb'))
    for p in nbs: print(render(p, out_dir))
