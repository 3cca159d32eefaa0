"""Give every plotly figure saved in a notebook its offline HTML fallback (`ctglip.viz.figure_html`).

Figures shown with `ctglip.viz.use_offline_figures()` are saved with the fallback already; this adds it to
figures saved before, without running the notebook. `--check` only reports the figures that lack one.
Usage: python .ci/plotly_fallback.py [--check] [NOTEBOOK ...]   (default: every notebook in nbs/)
"""
import json, sys
from pathlib import Path

from ctglip.viz import PLOTLY_MIME, figure_html

ROOT = Path(__file__).resolve().parent.parent


def missing(nb:dict) -> list:
    "The outputs of `nb` that hold a plotly figure and no HTML fallback."
    return [o for c in nb['cells'] for o in c.get('outputs', []) if PLOTLY_MIME in o.get('data', {}) and 'text/html' not in o['data']]


def add_fallbacks(path:Path) -> int:
    nb = json.loads(path.read_text()); todo = missing(nb)
    for o in todo: o['data']['text/html'] = [l for l in figure_html(o['data'][PLOTLY_MIME]).splitlines(keepends=True)]
    if todo: path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    return len(todo)


if __name__ == '__main__':
    check = '--check' in sys.argv
    nbs = [Path(a) for a in sys.argv[1:] if a != '--check'] or sorted((ROOT/'nbs').glob('*.ipynb'))
    bad = 0
    for p in nbs:
        n = len(missing(json.loads(p.read_text()))) if check else add_fallbacks(p)
        if n: print(f'{p}: {n} figure(s) {"without" if check else "given"} an offline HTML fallback'); bad += n
    sys.exit(1 if check and bad else 0)
