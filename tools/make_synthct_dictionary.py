"""Rebuild ctglip/assets/dictionary_synthct.csv: the curated seed plus findings mined from 200 SynthCT cases (seed 0).

Run after a change to the SynthCT generator or its report templates:  python tools/make_synthct_dictionary.py [OUT.csv]
(the same recipe as the check in nbs/14_data.dictionary.ipynb; OUT defaults to the shipped file).
"""
import sys, tempfile
from pathlib import Path

from ctglip.config import DataConfig
from ctglip.data.dictionary import build_dictionary
from ctglip.data.layout import find_scans
from ctglip.data.pairing import dataset_pairs
from ctglip.synth.core import generate

if __name__ == '__main__':
    out = generate(Path(tempfile.mkdtemp())/'synthct', n=200, seed=0)
    d = build_dictionary(dataset_pairs(find_scans(out), DataConfig(keep_truncated=True)), splits=None)
    dest = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent/'ctglip'/'assets'/'dictionary_synthct.csv'
    d.to_csv(dest, index=False)
    print(f'{dest}: {len(d)} entries, {(d.source != "seed").sum()} mined')
