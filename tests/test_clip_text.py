"The CLIP baseline reads its whole report: sentence chunks that fit the text window, encoded and averaged, in training and evaluation."
import numpy as np
import pytest
import torch

from ctglip.config import get_config
from ctglip.data.report import split_sentences
from ctglip.models.glip import CLIPBaseline, build_model
from ctglip.models.text import chunk_text, text_coverage
from ctglip.eval.core import embed, score

REPORT = ('Findings: The trachea and both main bronchi are open and there is no occlusive pathology in their lumens. '
          'The heart contour and size are normal and there is no pericardial effusion or thickening. '
          'The thoracic aorta has a normal diameter and calcified atherosclerotic plaques are seen in its wall. '
          'No lymph nodes in pathological size and appearance were detected in the mediastinum or in either hilar region. '
          'When examined in the lung parenchyma window, mild emphysematous changes are present in both upper lobes. '
          'A subpleural nodule of 4 mm is seen in the posterior basal segment of the right lower lobe. '
          'No pleural effusion or pneumothorax is present on either side. '
          'In the sections of the upper abdomen, the liver is of normal size and its parenchyma shows no focal lesion. '
          'The gallbladder, the spleen, the pancreas and both adrenal glands are unremarkable. '
          'A simple cortical cyst of 12 mm is seen in the upper pole of the left kidney. '
          'Impression: Mild centrilobular emphysema. A 4 mm nodule in the right lower lobe, follow-up is recommended. '
          'Atherosclerotic calcification of the thoracic aorta. A simple cyst of the left kidney.')
CHANGED = ' '.join(split_sentences(REPORT)[:-1] + ['Bilateral pleural effusions.'])   # only the last sentence differs


def clip(long_text='chunk', max_len=64):
    torch.manual_seed(0)
    return CLIPBaseline(vision='cnn', text='tiny-random', embed_dim=32, vision_kw=dict(cnn_widths=(4, 8, 16)),
                        text_kw=dict(max_len=max_len, long_text=long_text))


def test_report_is_longer_than_the_window():
    m = clip(); n = len(m.text.tokenizer(REPORT).input_ids)
    assert n > 4 * 64, n
    pieces = chunk_text(REPORT, m.text.tokenizer, 64)
    assert all(len(m.text.tokenizer(p).input_ids) <= 64 for p in pieces)
    assert all(any(s in p for p in pieces) for s in split_sentences(REPORT))   # no sentence is cut


def test_last_sentence_changes_the_pooled_report_embedding():
    m = clip()
    with torch.no_grad(): a, b = m.encode_text([REPORT, CHANGED])
    assert not torch.allclose(a, b, atol=1e-6)
    assert torch.isclose(a.norm(), torch.tensor(1.))
    with torch.no_grad(): ta, tb = clip('truncate').encode_text([REPORT, CHANGED])   # the old behaviour: the last sentence never arrived
    assert torch.allclose(ta, tb, atol=1e-6)


def test_coverage_is_one_with_chunking():
    tok = clip().text.tokenizer
    assert text_coverage([REPORT, CHANGED, 'Normal study.'], tok, 64) == 1.0
    assert text_coverage([REPORT], tok, 64, chunked=False) < 0.3
    assert clip().text.coverage([REPORT]) == 1.0 and clip('truncate').text.coverage([REPORT]) < 0.3


def test_training_loss_sees_the_last_sentence():
    m = clip(); img = torch.rand(2, 1, 16, 16, 16)
    b = dict(image=img, report=[REPORT, 'Normal study.'])
    with torch.no_grad(): l1, l2 = m(b)['loss'], m(dict(b, report=[CHANGED, 'Normal study.']))['loss']
    assert not torch.isclose(l1, l2)


def test_evaluation_records_text_coverage():
    m = clip(); S = 12
    pm = torch.zeros(3, S, S, S, dtype=torch.long); pm[:, :6] = torch.tensor([1, 2, 3])[:, None, None, None]
    batch = dict(image=torch.rand(3, 1, S, S, S), pair_map=pm, scan_idx=torch.arange(3), organ=['liver'] * 3,
                 organ_idx=torch.zeros(3, dtype=torch.long), text=['liver normal'] * 3, is_normal=torch.ones(3, dtype=torch.bool),
                 findings=[[], [], []], report=[REPORT, CHANGED, 'Normal study.'], scan_id=['a', 'b', 'c'])
    r = score(embed(m, [batch]), m, tasks=[], n_boot=0)
    assert r['text_coverage'] == 1.0 and r['summary']['text_coverage'] == 1.0


def test_cpu_demo_preset_reads_whole_reports():
    cfg = get_config('cpu-demo')
    m = build_model(cfg, 'clip')
    assert (m.text.max_len, m.text.long_text) == (64, 'chunk') and m.text.coverage([REPORT]) == 1.0
    with torch.no_grad(): a, b = m.encode_text([REPORT, CHANGED])
    assert not torch.allclose(a, b, atol=1e-6)
