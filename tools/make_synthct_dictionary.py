"""Rebuild ctglip/assets/dictionary_synthct.csv: the curated seed plus findings mined from 200 SynthCT cases (seed 0).

Run after a change to the SynthCT generator or its report templates:  python tools/make_synthct_dictionary.py
"""
import tempfile
from pathlib import Path

from ctglip.data.dictionary import build_dictionary
from ctglip.data.pairing import dataset_pairs
from ctglip.data.synth import generate

if __name__ == '__main__':
    out = generate(Path(tempfile.mkdtemp())/'synthct', n=200, seed=0)
    d = build_dictionary(dataset_pairs(out, keep_truncated=True))
    dest = Path(__file__).resolve().parent.parent/'ctglip'/'assets'/'dictionary_synthct.csv'
    d.to_csv(dest, index=False)
    print(f'{dest}: {len(d)} entries, {(d.source != "seed").sum()} mined')
