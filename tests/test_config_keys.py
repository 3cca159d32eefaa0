"Every config key the code reads exists in the typed config, and no code reads a config key with a fallback default."
import ast
from dataclasses import fields
from pathlib import Path

from ctglip.config import Config, SECTIONS, field_index, override, to_dict

PKG = Path(__file__).resolve().parent.parent/'ctglip'
FIELDS = {s: {f.name for f in fields(getattr(Config(), s))} for s in SECTIONS}
CFG_NAMES = ('cfg', 'config')   # what the code calls a whole `Config`


def _section(node) -> str|None:
    "The section of `cfg.SECTION` / `self.cfg.SECTION` / `x.cfg.SECTION`, else None."
    if isinstance(node, ast.Attribute) and node.attr in SECTIONS:
        v = node.value
        if (isinstance(v, ast.Name) and v.id in CFG_NAMES) or (isinstance(v, ast.Attribute) and v.attr in CFG_NAMES): return node.attr
    return None


def _aliases(fn) -> dict:
    "{name: section} for `t = cfg.train` and `d, m = cfg.data, cfg.model` in one function."
    out = {}
    for n in ast.walk(fn):
        if not isinstance(n, ast.Assign): continue
        for t in n.targets:
            pairs = [(t, n.value)] if isinstance(t, ast.Name) else list(zip(t.elts, n.value.elts)) if isinstance(t, ast.Tuple) and isinstance(n.value, ast.Tuple) else []
            out.update({a.id: s for a, v in pairs if isinstance(a, ast.Name) and (s := _section(v))})
    return out


def config_reads(tree) -> list:
    "(section, key, line) of every config key read in a module."
    reads = [(s, n.attr, n.lineno) for n in ast.walk(tree) if isinstance(n, ast.Attribute) and (s := _section(n.value))]
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            al = _aliases(fn)
            reads += [(al[n.value.id], n.attr, n.lineno) for n in ast.walk(fn)
                      if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in al]
    return reads


def fallback_reads(tree) -> list:
    "`getattr(cfg, 'SECTION', ...)` or `getattr(cfg.SECTION, 'key', default)`: a config key read with a fallback."
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == 'getattr' and len(n.args) == 3:
            obj, key = n.args[0], n.args[1]
            if _section(obj) or (isinstance(key, ast.Constant) and key.value in SECTIONS): out.append(n.lineno)
    return out


def _modules():
    return [(f.relative_to(PKG), ast.parse(f.read_text())) for f in sorted(PKG.rglob('*.py')) if f.name != '_modidx.py']


def test_code_reads_only_keys_of_the_typed_config():
    seen, bad = set(), []
    for f, tree in _modules():
        for s, k, line in config_reads(tree):
            seen.add(f"{s}.{k}")
            if k not in FIELDS[s]: bad.append(f"{f}:{line}: {s}.{k}")
    assert not bad, bad
    assert {'train.lr', 'data.spacing', 'model.vision', 'loss.tau_init'} <= seen   # the walk sees the code's reads


def test_no_config_key_read_with_a_default():
    bad = [f"{f}:{line}" for f, tree in _modules() for line in fallback_reads(tree)]
    assert not bad, bad


def test_the_walk_catches_a_missing_key():
    tree = ast.parse("def f(cfg):\n    t = cfg.train; return t.lrr + cfg.eval.prompt_mod + getattr(cfg.model, 'text_long', 1)")
    assert sorted((s, k) for s, k, _ in config_reads(tree) if k not in FIELDS[s]) == [('eval', 'prompt_mod'), ('train', 'lrr')]
    assert fallback_reads(tree) == [2]


def test_every_key_of_the_config_can_be_set():
    "Walk the config: every `section.key` is accepted by `override` with its own value and round-trips."
    d = to_dict(Config())
    for k, (s, f) in field_index().items():
        if '.' in k: assert to_dict(override(Config(), {k: getattr(getattr(Config(), s), f)}))[s][f] == d[s][f], k
