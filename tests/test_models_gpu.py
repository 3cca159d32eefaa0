"GPU checks of the encoders, pooling and models (skipped without CUDA): bf16 autocast, SDPA, channels_last_3d."
import os

import pytest
import torch

os.environ.setdefault('HF_HUB_OFFLINE', '1')
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')

from ctglip.models.vision import UNet3D, ViT3D, pool_organs, pool_global
from ctglip.models.glip import CTGLIP, CLIPBaseline

DEV = 'cuda'


def test_pool_organs_cuda_equals_cpu():
    g = torch.Generator().manual_seed(0)
    pm = torch.randint(0, 30, (2, 64, 64, 64), generator=g)
    for fs in [(64, 64, 64), (8, 8, 8), (16, 8, 4)]:
        f = torch.randn(2, 16, *fs, generator=g)
        torch.testing.assert_close(pool_organs(f.to(DEV), pm.to(DEV), 29).cpu(), pool_organs(f, pm, 29), rtol=1e-4, atol=1e-5)
    fb = f.to(DEV, torch.bfloat16)
    torch.testing.assert_close(pool_organs(fb, pm.to(DEV), 29).cpu(), pool_organs(fb.float().cpu(), pm, 29), rtol=1e-4, atol=1e-4)


def test_vit_sdpa_matches_explicit_bf16():
    torch.manual_seed(0)
    vit = ViT3D(img_size=(64, 64, 64), patch=(8, 8, 8), dim=128, depth=2, heads=4).to(DEV)
    x = torch.rand(2, 1, 64, 64, 64, device=DEV)
    with torch.autocast('cuda', dtype=torch.bfloat16):
        a = vit.set_attention('sdpa')(x).float(); b = vit.set_attention('explicit')(x).float()
    torch.testing.assert_close(a, b, rtol=5e-2, atol=5e-2)


def test_cnn_channels_last_bf16():
    torch.manual_seed(0)
    cnn = UNet3D(widths=(8, 16, 32), stem=2).to(DEV)
    x = torch.rand(2, 1, 64, 64, 64, device=DEV)
    ref = cnn(x)
    cl = cnn.to(memory_format=torch.channels_last_3d)
    with torch.autocast('cuda', dtype=torch.bfloat16): out = cl(x.to(memory_format=torch.channels_last_3d))
    torch.testing.assert_close(out.float(), ref, rtol=5e-2, atol=5e-2)


@pytest.mark.parametrize('vision', ['cnn', 'vit'])
def test_models_train_step_bf16(vision):
    torch.manual_seed(0)
    kw = dict(cnn_widths=(8, 16, 32)) if vision == 'cnn' else dict(img_size=(64, 64, 64), vit_patch=(16, 16, 16), vit_dim=64, vit_depth=2, vit_heads=4)
    pm = torch.zeros(2, 64, 64, 64, dtype=torch.long, device=DEV)
    pm[0, :20], pm[0, 30:40, :10], pm[1, 10:50, 10:50, 10:50] = 1, 2, 3
    batch = dict(image=torch.rand(2, 1, 64, 64, 64, device=DEV), pair_map=pm, organ=['liver', 'lung', 'spleen'],
                 text=['liver shows no significant abnormalities.', 'a nodule.', 'spleen shows no significant abnormalities.'],
                 is_normal=torch.tensor([True, False, True], device=DEV), neg_text=[['a cyst.'], ['emphysema.'], ['splenomegaly.']],
                 report=['r0', 'r1'])
    for cls in (CTGLIP, CLIPBaseline):
        m = cls(vision=vision, vision_kw=kw, text='tiny-random', embed_dim=32).to(DEV)
        with torch.autocast('cuda', dtype=torch.bfloat16): out = m(batch)
        out['loss'].backward()
        assert torch.isfinite(out['loss']) and out['loss'].dtype == torch.float32
        assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
