"The scan transform on toy scans whose HU encodes the label map: alignment, label set, determinism, slabs, kept, inputs."
import pickle

import numpy as np
import pytest
import torch
from scipy import ndimage

from ctglip.config import get_config, override
from ctglip.core import CtglipError
from ctglip.data.transform import scan_transform, crop_pad, crop_start, label_counts

torch.set_num_threads(1)
IDS = (5, 1, 2, 52)
QUIET = ['aug_contrast_p=0', 'aug_noise_hu=0', 'aug_hu_scale=0', 'aug_hu_shift=0']


def toy(shape=(48, 44, 40)):
    "Body ellipse, four separated spheres; HU = 10 x id in organs, 0 in the body, -1000 outside."
    x, y, z = np.indices(shape); n = np.array(shape)
    body = ((x - n[0] / 2) / (.45 * n[0]))**2 + ((y - n[1] / 2) / (.4 * n[1]))**2 < 1
    lab = np.zeros(shape, np.uint8)
    for i, (fx, fy, fz, r) in zip(IDS, ((.3, .5, .45, 7), (.72, .5, .45, 5), (.5, .35, .8, 5), (.5, .65, .1, 4))):
        lab[(x - fx * n[0])**2 + (y - fy * n[1])**2 + (z - fz * n[2])**2 < r * r] = i
    img = np.where(body, 0, -1000).astype(np.int16); img[lab > 0] = 10 * lab[lab > 0].astype(np.int16)
    idx = [np.flatnonzero(body.any(axis=tuple(j for j in range(3) if j != a))) for a in range(3)]
    return dict(image=img, label=lab, fg_box=[int(o[0]) for o in idx] + [int(o[-1]) + 1 for o in idx])


def interior(lab):
    return (lab > 0) & (ndimage.minimum_filter(lab, 3, mode='constant') == lab) & (ndimage.maximum_filter(lab, 3) == lab)


@pytest.mark.parametrize('preset,extra', [('tiny', []), ('cpu-demo', []), ('cpu-demo', ['aug_tilt=5', 'aug_rotate=20']),
                                          ('cpu-demo', ['spacing=1.5,1.5,1.5', 'aug_thickness_p=1'])])
def test_image_and_label_stay_aligned(preset, extra):
    t = scan_transform(override(get_config(preset), QUIET + extra), train=True); s = toy(); n = 0
    for i in range(8):
        o = t(dict(s, rng=np.random.default_rng(i))); m = interior(o['label']); n += m.sum()
        if 'aug_thickness_p=1' in extra:                      # thick slices average up to 5 voxels along z: stay that far from the edges
            m &= ndimage.minimum_filter(o['label'], (3, 3, 11), mode='constant') == o['label']
        assert (np.abs(o['image'][m] - 10 * o['label'][m].astype(int)) <= 1).all()
    assert n > 500


@pytest.mark.parametrize('preset', ['tiny', 'cpu-demo'])
def test_labels_determinism_and_shapes(preset):
    cfg = get_config(preset); t = scan_transform(cfg, train=True); s = toy()
    outs = [t(dict(s, rng=np.random.default_rng(i))) for i in range(10)]
    for o in outs:
        assert o['image'].shape == o['label'].shape == cfg.data.size and o['image'].dtype == np.int16 and o['label'].dtype == np.uint8
        assert set(np.unique(o['label']).tolist()) <= {0, *IDS}
        assert o['kept'].shape == (256,) and o['kept'].dtype == np.float32 and ((o['kept'] >= 0) & (o['kept'] <= 1)).all()
        assert o['image'].min() >= cfg.data.hu_window[0] and o['image'].max() <= cfg.data.hu_window[1]
    a = t(dict(s, rng=np.random.default_rng(3)))
    assert np.array_equal(a['image'], outs[3]['image']) and np.array_equal(a['label'], outs[3]['label']) and a['params'] == outs[3]['params']
    assert not np.array_equal(outs[0]['image'], outs[1]['image'])


def test_eval_is_the_centred_crop_and_slab():
    cfg = get_config('cpu-demo'); ev = scan_transform(cfg, train=False); s = toy()
    st = crop_start(s['image'].shape, cfg.data.size, [(a + b) / 2 for a, b in zip(s['fg_box'][:3], s['fg_box'][3:])])
    o = ev(s)
    assert np.array_equal(o['image'], crop_pad(s['image'], st, cfg.data.size, -1000)) and np.array_equal(o['label'], crop_pad(s['label'], st, cfg.data.size))
    assert o['kept'][list(IDS)].tolist() == [1, 1, 1, 1]
    o = ev(dict(s, slab=(12, 24)))
    assert set(np.unique(o['label']).tolist()) == {0, 1, 5} and (o['image'] > -1000).any(axis=(0, 1)).sum() == 12
    assert o['kept'][1] == 1 and 0 < o['kept'][5] < 1 and o['kept'][2] == 0
    o = scan_transform(cfg, train=True)(dict(s, slab=(12, 24), rng=np.random.default_rng(0)))
    assert set(np.unique(o['label']).tolist()) <= {0, 1, 5} and o['kept'][2] == 0


def test_all_augmentation_off_is_eval():
    off = override(get_config('cpu-demo'), QUIET + ['aug_slab_p=0', 'aug_crop_xy=0', 'aug_place=false', 'aug_scale=0', 'aug_rotate=0',
                                                     'aug_tilt=0', 'aug_thickness_p=0', 'crop_jitter=0'])
    s = toy(); a, e = scan_transform(off, True)(dict(s, rng=np.random.default_rng(0))), scan_transform(off, False)(s)
    assert np.array_equal(a['image'], e['image']) and np.array_equal(a['label'], e['label']) and np.array_equal(a['kept'], e['kept'])
    b = scan_transform(override(off, ['augment=false']), True)(dict(s, rng=np.random.default_rng(0)))
    assert np.array_equal(b['image'], e['image'])


def test_kept_fully_inside_is_one_and_cut_is_less():
    s = toy()
    t = scan_transform(override(get_config('cpu-demo'), ['aug_slab_p=0', 'aug_crop_xy=0']), True)
    assert all(t(dict(s, rng=np.random.default_rng(i)))['kept'][list(IDS)].tolist() == [1, 1, 1, 1] for i in range(5))
    small = scan_transform(get_config('tiny'), True)   # 32^3: organs get cut
    ks = np.array([small(dict(s, rng=np.random.default_rng(i)))['kept'][list(IDS)] for i in range(10)])
    assert ((ks > 0) & (ks < 1)).any()


def test_memmap_float_counts_and_pickle(tmp_path):
    s = toy(); np.save(tmp_path/'i.npy', s['image']); np.save(tmp_path/'l.npy', s['label'])
    mm = dict(s, image=np.load(tmp_path/'i.npy', mmap_mode='r'), label=np.load(tmp_path/'l.npy', mmap_mode='r'))
    cfg = get_config('cpu-demo'); t = scan_transform(cfg, True)
    a = t(dict(mm, rng=np.random.default_rng(1))); b = t(dict(s, rng=np.random.default_rng(1)))
    assert np.array_equal(a['image'], b['image'])
    c = t(dict(s, label_counts=label_counts(s['label']), rng=np.random.default_rng(1)))
    assert np.array_equal(c['kept'], b['kept'])
    f = scan_transform(cfg, False)(dict(s, image=s['image'].astype(np.float32) + 0.2))
    assert f['image'].dtype == np.int16 and np.array_equal(f['image'], scan_transform(cfg, False)(s)['image'])
    t2 = pickle.loads(pickle.dumps(t))
    assert np.array_equal(t2(dict(s, rng=np.random.default_rng(1)))['image'], b['image'])


def test_gpu_sizes_on_a_small_scan():
    cfg = override(get_config('gpu-cnn'), ['aug_thickness_p=1', 'aug_thickness=3,5', 'aug_contrast_p=1']); s = toy((60, 56, 50))
    o = scan_transform(cfg, True)(dict(s, rng=np.random.default_rng(0)))
    assert o['image'].shape == (256, 256, 128) and o['params']['thickness'] > 1.5 and o['params']['phase'] != 'native'
    assert set(np.unique(o['label']).tolist()) <= {0, *IDS}


def test_bad_samples():
    t = scan_transform(get_config('tiny'), True); s = toy()
    with pytest.raises(CtglipError, match='s7: scan transform: label must be uint8'): t(dict(s, label=s['label'].astype(np.int32), scan_id='s7', rng=np.random.default_rng(0)))
    with pytest.raises(CtglipError, match='must be 3D arrays of one shape'): t(dict(s, label=s['label'][:, :, :3], rng=np.random.default_rng(0)))
    with pytest.raises(CtglipError, match=r'slab \(5, 99\)'): t(dict(s, slab=(5, 99), rng=np.random.default_rng(0)))
    with pytest.raises(CtglipError, match="training needs sample\\['rng'\\]"): t(s)
    with pytest.raises(CtglipError, match='fg_box needs 6 values'): t(dict(s, fg_box=[0, 0, 0], rng=np.random.default_rng(0)))
