"""Remove saved ipywidgets state and widget views from notebooks (nbdev_clean keeps them).

Usage: python .ci/strip_widgets.py [NOTEBOOK ...]   (default: every notebook in nbs/)
"""
import json, sys
from pathlib import Path

VIEW, STATE = 'application/vnd.jupyter.widget-view+json', 'application/vnd.jupyter.widget-state+json'


def strip(path: Path) -> bool:
    nb = json.loads(path.read_text()); before = json.dumps(nb)
    nb.get('metadata', {}).pop('widgets', None)
    for c in nb['cells']:
        outs = []
        for o in c.get('outputs', []):
            data = o.get('data')
            if data and VIEW in data:
                data.pop(VIEW); data.pop('text/plain', None) if len(data) == 1 and 'text/plain' in data else None
                if not data: continue
            outs.append(o)
        if 'outputs' in c: c['outputs'] = outs
    if json.dumps(nb) == before: return False
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n'); return True


if __name__ == '__main__':
    root = Path(__file__).resolve().parent.parent
    for p in [Path(o) for o in sys.argv[1:]] or sorted((root/'nbs').glob('*.ipynb')):
        if strip(p): print(f'stripped widget state: {p}')
