"""Measure the supervised ceiling on the demo's data (or a new SynthCT set) at the demo's budget.

The same vision encoder as the zero-shot models, trained from scratch with per-organ abnormality heads
(`ctglip.eval.ceiling.train_ceiling`) for the demo's steps, batch and schedule, scored on the test split
(AUC per task, scan bootstrap), split by lesion diameter in voxels. Not run by CI as a measurement (minutes on 2 cores;
tests/test_ceiling_probe.py runs it on a tiny set).

    python tools/ceiling_probe.py --demo /tmp/demo                      # a finished `ctglip demo` run: its data, work and tasks
    python tools/ceiling_probe.py --synth /tmp/ceil_a --size-scale 1.5  # a new SynthCT set with the demo's other settings
    python tools/ceiling_probe.py --synth /tmp/easy --synth-set 'phases=[["portal",1]]' deform_mm=2 \
        --tasks 'liver: hepatic steatosis' --override 'data.hu_window=[-200,300]'   # other SynthCT settings, one task, another window

With `--labels generator` (the default, as the demo scores) the tasks and labels are the SynthCT generator's
(`generator_units`: lesions the input cannot show left out), and the ceiling is scored on `--split` (default
valid: settings are chosen there) and on the training split. `--labels pairs` is the earlier protocol (parsed
report phrases, test split, size bins).
"""
import argparse, json, sys, time
from functools import partial
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ctglip.core import CtglipError
from ctglip.config import override
from ctglip.demo import DEMO_SETTINGS, demo_settings
from ctglip.synth.core import SynthConfig, generate, check_config
from ctglip.data.dataset import prepare_data, split_loader
from ctglip.eval.zeroshot import tasks_from
from ctglip.runs import load_run
from ctglip.eval.ceiling import HEAD_LR, train_ceiling, score_ceiling, histogram_probe, size_table, size_summary
from ctglip.synth.truth import generator_units, case_findings, lesion_sizes, hidden_cells, SIZE_BINS


def split_units(paths, cfg, split='valid'):
    "Units (organ, findings) of a split as the evaluation loader yields them, each scan once."
    rows, seen = [], set()
    for b in split_loader(paths, cfg, split):
        new = {i for i, s in enumerate(b['scan_id']) if s not in seen}; seen.update(b['scan_id'])
        rows += [dict(scan_id=b['scan_id'][i], organ=o, findings=list(f)) for o, f, i in zip(b['organ'], b['findings'], b['scan_idx'].tolist()) if i in new]
    return pd.DataFrame(rows)


def synth_settings(items) -> dict:
    "{field: value} of `--synth-set field=JSON` items (lists become tuples, as `SynthConfig` holds them)."
    known, out = {f.name for f in fields(SynthConfig)} - {'size', 'splits'}, {}
    for it in items:
        k, eq, v = it.partition('=')
        if not eq or k not in known: raise CtglipError(f"--synth-set {it!r}: expected FIELD=JSON with FIELD one of {', '.join(sorted(known))}")
        try: v = json.loads(v)
        except json.JSONDecodeError: raise CtglipError(f"--synth-set {it!r}: the value is not JSON") from None
        out[k] = tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
    return out


def make_set(a, cfg):
    "(data folder, DataPaths, tasks) of the run: the demo's, or a new SynthCT set with the demo's settings and the options."
    if a.demo:
        d = Path(a.demo); m = json.loads((d/'metrics.json').read_text())
        tasks = [tuple(t.split(': ', 1)) for t in m['data']['tasks']]
        return d/'data', prepare_data(d/'data', cfg, work=a.work or d/'work'), tasks
    s = DEMO_SETTINGS['cpu']; syn = dict(s.get('synth', {}))
    syn.update({k: v for k, v in dict(size_scale=a.size_scale, contrast_scale=a.contrast_scale, prevalence=a.prevalence,
                                       normal_rate=a.normal_rate).items() if v is not None})
    syn.update(synth_settings(a.synth_set))
    sc = check_config(SynthConfig(size=s['size'], splits=tuple(s['splits']), **syn)); out = Path(a.synth)
    man = out/'manifest.json'
    same = man.exists() and json.loads(man.read_text()).get('config') == json.loads(json.dumps(asdict(sc))) and json.loads(man.read_text())['n'] == a.n
    t0 = time.perf_counter()
    if not same: generate(out, a.n, a.data_seed, s['size'], cfg=sc, overwrite=True)
    paths = prepare_data(out, cfg, work=out/'work')
    print(f"data: {a.n} cases {'reused' if same else 'generated'} + cache in {time.perf_counter() - t0:.0f} s ({json.dumps(syn)})", flush=True)
    return out, paths, tasks_from(split_units(paths, cfg, 'valid'), 3, 3)


def generator_main(a, cfg, data, paths) -> int:
    "The ceiling and the histogram probe with the generator's labels, on the chosen split and the training split."
    rl = partial(generator_units, cases=case_findings(data), spacing=cfg.data.spacing)
    tasks = ([tuple(t.split(': ', 1)) for t in json.loads((Path(a.demo)/'metrics.json').read_text())['data']['tasks']] if a.demo
             else tasks_from(rl(split_units(paths, cfg, 'valid')), 3, 3))
    if a.tasks:
        want = [tuple(t.split(': ', 1)) for t in a.tasks]; miss = [': '.join(t) for t in want if t not in tasks]
        if miss: raise CtglipError(f"--tasks {miss}: not among the run's tasks ({', '.join(': '.join(t) for t in tasks)})")
        tasks = want
    t0 = time.perf_counter()
    model = train_ceiling(cfg, paths, tasks, steps=a.steps, seed=a.seed, pos_weight=None if a.pos_weight == 'none' else 'balanced',
                          sampling=a.sampling, relabel=rl, head_lr=a.head_lr, init=load_run(a.init)[0] if a.init else None)
    t_train = time.perf_counter() - t0
    res = {sp: score_ceiling(model, paths, cfg, tasks, n_boot=a.n_boot, seed=a.seed, split=sp, relabel=rl) for sp in (a.split, 'train')}
    hp = histogram_probe(paths, cfg, tasks, n_boot=a.n_boot, seed=a.seed, split=a.split, relabel=rl)
    tab = res[a.split]['table'][['organ', 'abnormality', 'n_pos', 'auc']].assign(auc_train=res['train']['table'].auc.values, auc_hist=hp['table'].auc.values)
    print(tab.round(3).to_string(index=False))
    m, f, h = res[a.split]['mean'], res['train']['mean'], hp['mean']
    print(f"ceiling on {a.split}: mean AUC {m['auc']:.3f} [{m['auc_lo']:.3f}, {m['auc_hi']:.3f}] over {len(tasks)} tasks; training split "
          f"{f['auc']:.3f}; histogram probe {h['auc']:.3f} [{h['auc_lo']:.3f}, {h['auc_hi']:.3f}]; {a.steps or cfg.train.steps} steps, "
          f"seed {a.seed}; loss {np.mean(model.losses[:20]):.3f} -> {np.mean(model.losses[-20:]):.3f}; train {t_train:.0f} s")
    if a.out:
        Path(a.out).write_text(json.dumps(dict(args=vars(a), tasks=[': '.join(t) for t in tasks], mean=m, train=f, histogram=h,
                                               table=tab.to_dict('records'), train_s=round(t_train, 1), losses=model.losses), indent=1, default=float))
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument('--demo', help='a finished demo run folder (data/, work/, metrics.json with the task list)')
    g.add_argument('--synth', help='generate (or reuse) a SynthCT set here with the demo settings and the options below')
    p.add_argument('--work', help="with --demo: another work folder for the pairs and cache (needed when --override changes data.*)")
    p.add_argument('--n', type=int, default=320); p.add_argument('--data-seed', type=int, default=0)
    p.add_argument('--size-scale', type=float); p.add_argument('--contrast-scale', type=float)
    p.add_argument('--prevalence', type=float); p.add_argument('--normal-rate', type=float)
    p.add_argument('--synth-set', nargs='*', default=[], metavar='FIELD=JSON',
                   help='more SynthCT settings, e.g. phases=\'[["portal",1]]\' deform_mm=2 (ctglip.synth.core.SynthConfig)')
    p.add_argument('--steps', type=int, default=None, help='optimizer steps (default: the demo config)')
    p.add_argument('--seed', type=int, default=0); p.add_argument('--n-boot', type=int, default=1000)
    p.add_argument('--exclude-below', type=float, default=0., help='train without positives below this diameter (voxels)')
    p.add_argument('--pos-weight', default='none', choices=['balanced', 'none'], help='weight of the positives in the BCE (default none)')
    p.add_argument('--head-lr', type=float, default=HEAD_LR, help=f'the heads\' learning rate as a multiple of train.lr (default {HEAD_LR:g})')
    p.add_argument('--init', default=None, help='start from this run\'s encoder and readout (a CT-GLIP or CLIP run folder); default: from scratch')
    p.add_argument('--sampling', default='balanced', choices=['balanced', 'uniform'], help="positives sampled into every batch (default) or a plain shuffle")
    p.add_argument('--override', nargs='*', default=[], help='more config overrides (key=value)')
    p.add_argument('--labels', default='generator', choices=['generator', 'pairs'], help="the generator's labels (default) or parsed report phrases")
    p.add_argument('--tasks', nargs='*', default=[], metavar='"ORGAN: ABNORMALITY"', help='with --labels generator: train and score only these tasks')
    p.add_argument('--split', default='valid', help='with --labels generator: the split scored (default valid)')
    p.add_argument('--out', help='write the results as JSON here')
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = override(demo_settings('cpu')['configs']['ctglip'], a.override)
    data, paths, tasks = make_set(a, cfg)
    if a.labels == 'generator': return generator_main(a, cfg, data, paths)
    sp = float(np.mean(cfg.data.spacing)); sizes = lesion_sizes(data, paths.pairs); hidden = hidden_cells(sizes, sp, SIZE_BINS[0])
    excl = hidden_cells(sizes, sp, a.exclude_below) if a.exclude_below else set()
    t0 = time.perf_counter(); hp = histogram_probe(paths, cfg, tasks, n_boot=a.n_boot, seed=a.seed); t_hist = time.perf_counter() - t0
    hst = size_summary(size_table(hp, sizes, sp))
    t0 = time.perf_counter()
    model = train_ceiling(cfg, paths, tasks, steps=a.steps, seed=a.seed, exclude=excl, pos_weight=None if a.pos_weight == 'none' else 'balanced', sampling=a.sampling)
    t_train = time.perf_counter() - t0; t0 = time.perf_counter()
    res = score_ceiling(model, paths, cfg, tasks, n_boot=a.n_boot, seed=a.seed)
    vis = score_ceiling(model, paths, cfg, tasks, n_boot=a.n_boot, seed=a.seed, exclude=hidden)
    fit = score_ceiling(model, paths, cfg, tasks, n_boot=0, split='train')['mean']['auc']
    t_score = time.perf_counter() - t0
    st = size_table(res, sizes, sp); sm = size_summary(st)
    tab = res['table'][['organ', 'abnormality', 'n', 'n_pos', 'auc', 'auc_lo', 'auc_hi']].copy()
    tab['auc_hist'] = hp['table'].auc.values; tab['auc_visible'] = vis['table'].auc.values; tab['n_pos_visible'] = vis['table'].n_pos.values
    pd.set_option('display.width', 200)
    print(tab.round(3).to_string(index=False))
    print('\nper task and lesion diameter (voxels at %.0f mm; each bin against all negatives of the task):' % sp)
    print(st.pivot_table(index=['organ', 'abnormality'], columns='bin', values='auc').round(2).to_string())
    print(pd.concat(dict(ceiling=sm, histogram=hst), axis=1).to_string())
    steps = a.steps or cfg.train.steps; m, v = res['mean'], vis['mean']
    print(f"\nceiling: mean AUC {m['auc']:.3f} [{m['auc_lo']:.3f}, {m['auc_hi']:.3f}] over {len(tasks)} tasks; "
          f"without positives < {SIZE_BINS[0]:g} voxels {v['auc']:.3f} [{v['auc_lo']:.3f}, {v['auc_hi']:.3f}]; "
          f"training-split AUC {fit:.3f}; {steps} steps, batch {cfg.train.batch_size}, seed {a.seed}; train {t_train:.0f} s, score {t_score:.0f} s; "
          f"final loss {np.mean(model.losses[-20:]):.3f}")
    h = hp['mean']; print(f"histogram probe (no training of the encoder): mean AUC {h['auc']:.3f} [{h['auc_lo']:.3f}, {h['auc_hi']:.3f}] in {t_hist:.0f} s")
    if a.out:
        Path(a.out).write_text(json.dumps(dict(args=vars(a), tasks=[': '.join(t) for t in tasks], mean=m, mean_visible=v, train_auc=fit, histogram=h, histogram_sizes=hst.reset_index().to_dict('records'),
                                               steps=steps, train_s=round(t_train, 1), score_s=round(t_score, 1),
                                               table=tab.to_dict('records'), sizes=st.to_dict('records'),
                                               size_summary=sm.reset_index().to_dict('records'),
                                               losses=model.losses), indent=1, default=float))
    return 0


if __name__ == '__main__':
    try: sys.exit(main())
    except CtglipError as e: print(f"ceiling_probe: {e}", file=sys.stderr); sys.exit(2)
