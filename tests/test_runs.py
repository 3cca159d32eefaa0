"Imports go one way (data -> models -> runs -> train / eval -> study, demo, cli); inference loads a run without the training loop."
import ast, subprocess, sys
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent/'ctglip'
LAYERS = [('core', 'anatomy', 'config', 'viz'), ('data', 'synth', 'prompts'), ('models', 'loss'), ('runs',), ('eval',), ('train',),
          ('browse', 'study', 'demo', 'cli')]


def _layer(mod:str) -> int:
    top = mod.split('.')[0]
    return next(i for i, names in enumerate(LAYERS) if top in names)


def _imports(f:Path) -> set:
    "The ctglip modules a file imports at module level (relative imports resolved)."
    pkg = f.relative_to(PKG.parent).with_suffix('').parts[1:-1]
    out = set()
    for node in ast.parse(f.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(pkg[:len(pkg) - node.level + 1]) + ([node.module] if node.module else [])
            out.add('.'.join(base))
    return out


def test_imports_go_one_way():
    bad = []
    for f in PKG.rglob('*.py'):
        me = '.'.join(f.relative_to(PKG).with_suffix('').parts)
        if me in ('_modidx', '__init__') or me.endswith('__init__'): continue
        bad += [f"{me} imports {m}" for m in _imports(f) if m and _layer(m) > _layer(me)]
    assert not bad, bad


def test_inference_commands_import_no_training_loop():
    code = ("import sys, ctglip.eval.predict, ctglip.eval.benchmark, ctglip.cli, ctglip.runs\n"
            "print('ctglip.train' in sys.modules)")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == 'False'


def test_public_load_is_lazy():
    r = subprocess.run([sys.executable, '-c', "import sys, ctglip; print(callable(ctglip.load), 'ctglip.runs' in sys.modules)"],
                       capture_output=True, text=True, check=True)
    assert r.stdout.split() == ['True', 'False']


def test_no_private_names_across_modules():
    "A module imports only public names of another ctglip module."
    bad = []
    for f in PKG.rglob('*.py'):
        if f.name == '_modidx.py': continue
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or '').startswith('ctglip')):
                bad += [f"{f.relative_to(PKG)}: {a.name}" for a in node.names if a.name.startswith('_') and a.name != '__version__']
    assert not bad, bad


def test_package_never_imports_monai():
    "MONAI is a `[dev]` requirement (the benchmarks' baseline): the package must not need it."
    names = [a.name if isinstance(n, ast.Import) else n.module or '' for f in PKG.rglob('*.py')
             for n in ast.walk(ast.parse(f.read_text())) if isinstance(n, (ast.Import, ast.ImportFrom))
             for a in (n.names if isinstance(n, ast.Import) else [None])]
    assert not [m for m in names if m.split('.')[0] == 'monai']



def _imports_only(src:str) -> bool:
    "Whether a cell holds only imports (an import cell needs no example after it)."
    import ast
    body = ast.parse('\n'.join(l for l in src.splitlines() if not l.startswith('#|'))).body
    return bool(body) and all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in body)

def _literate_problems(nb) -> list:
    "Exported cells over 40 lines (the `#| export` line counted), and exported cells not followed by a sentence or an example."
    import json
    cells, out = json.loads(nb.read_text())['cells'], []
    exported = lambda c: c['cell_type'] == 'code' and any(l.startswith('#| export') for l in ''.join(c['source']).splitlines())
    for i, c in enumerate(cells):
        s = ''.join(c['source'])
        if not exported(c) or _imports_only(s): continue
        head = next((l for l in s.splitlines() if not l.startswith('#|')), '')
        if len(s.splitlines()) > 40: out.append(f"{nb.stem}: {len(s.splitlines())} lines: {head}")
        if i + 1 == len(cells) or exported(cells[i + 1]): out.append(f"{nb.stem}: nothing after: {head}")
    return out

def test_notebooks_are_literate():
    "In every notebook no exported cell is over 40 lines, and each is followed by a sentence or an example."
    nbs = sorted((PKG.parent/'nbs').glob('*.ipynb'))
    assert len(nbs) > 30
    problems = [p for nb in nbs for p in _literate_problems(nb)]
    assert not problems, problems
