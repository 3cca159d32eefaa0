"""Write README.md from nbs/index.ipynb without quarto (`--check`: fail if README.md is out of step)."""
import json, re, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
nb = json.loads((root/'nbs'/'index.ipynb').read_text())
out = ['<!-- Generated from nbs/index.ipynb by .ci/readme.py: edit the notebook, not this file. -->', '']
for c in nb['cells']:
    src = ''.join(c['source']).rstrip()
    if not src or src.startswith('#|'): continue
    if c['cell_type'] == 'markdown':
        out += [re.sub(r'\]\((?!https?:)(images/[^)]+)\)', r'](nbs/\1)', src), '']
    elif c['cell_type'] == 'code':
        if any(l.startswith('#| hide') for l in src.splitlines()): continue
        out += ['```python', src, '```', '']
        for o in c.get('outputs', []):
            txt = o.get('text') or o.get('data', {}).get('text/plain')
            if txt: out += ['```', ''.join(txt).rstrip(), '```', '']
text = '\n'.join(out).rstrip() + '\n'
readme = root/'README.md'
if '--check' in sys.argv:
    if readme.read_text() != text:
        sys.exit('README.md is out of step with nbs/index.ipynb: run `python .ci/readme.py`')
    print('README.md is in step with nbs/index.ipynb')
else:
    readme.write_text(text); print(f'wrote {readme}')
