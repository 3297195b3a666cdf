"""BatchNorm folding (the tracker's inference networks) and the process allocator setting."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from d3s_vot import D3SParams, D3STracker
from d3s_vot.model import ResNet50Trunk, SegmNet, fold_batchnorm, fold_conv_bn
from d3s_vot.tracker.crops import _normalize_values, normalize_segm_crop
from d3s_vot.weights import random_weights


def _randomise_bn(module: nn.Module, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)
    return module.eval()


def test_fold_conv_bn_matches_conv_then_bn():
    conv, bn = nn.Conv2d(5, 7, 3, padding=1, bias=True).double(), _randomise_bn(nn.BatchNorm2d(7)).double()
    x = torch.randn(2, 5, 9, 9, dtype=torch.float64)
    torch.testing.assert_close(fold_conv_bn(conv, bn)(x), bn(conv(x)), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="eval mode"):
        fold_conv_bn(conv, bn.train())


def test_folded_trunk_and_head_equal_the_originals():
    net = _randomise_bn(SegmNet()).double()
    folded = fold_batchnorm(net)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules()), "the input network must be left alone"
    gen = torch.Generator().manual_seed(1)
    train, test = (torch.randn(1, 3, 128, 128, generator=gen, dtype=torch.float64) for _ in range(2))
    mask = (torch.rand(1, 1, 128, 128, generator=gen) > 0.5).double()
    dist = torch.rand(1, 1, 128, 128, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(folded(train, test, mask, dist), net(train, test, mask, dist), rtol=1e-9, atol=1e-9)
        trunk = _randomise_bn(ResNet50Trunk(), seed=2).double()
        x = torch.randn(2, 3, 64, 64, generator=gen, dtype=torch.float64)
        a, b = fold_batchnorm(trunk)(x), trunk(x)
        for name in a:
            torch.testing.assert_close(a[name], b[name], rtol=1e-9, atol=1e-9)


def test_fold_refuses_a_lone_batchnorm():
    with pytest.raises(ValueError, match="cannot be folded"):
        fold_batchnorm(nn.Sequential(nn.ReLU(), nn.BatchNorm2d(3)))


def test_tracker_folds_in_float32_only():
    w = random_weights(0)
    t32 = D3STracker(w, D3SParams(), device="cpu", dtype=torch.float32)
    t64 = D3STracker(w, D3SParams(), device="cpu", dtype=torch.float64)
    off = D3STracker(w, D3SParams(fold_batchnorm=False), device="cpu", dtype=torch.float32)
    count = lambda t: sum(isinstance(m, nn.BatchNorm2d) for net in (t.dcf_net, t.segm_net) for m in net.modules())
    assert t32.folded and count(t32) == 0
    assert not t64.folded and count(t64) > 0       # float64 is the reference mode: the original's op order
    assert not off.folded and count(off) > 0


def test_lut_normalisation_is_bit_identical():
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (37, 41, 3), dtype=np.uint8)
    crop[0, :3] = [[0, 0, 0], [255, 255, 255], [128, 7, 250]]
    out = normalize_segm_crop(crop)
    assert out.dtype == np.float32 and out.shape == crop.shape
    np.testing.assert_array_equal(out, _normalize_values(crop))
    floats = crop.astype(np.float32)          # non-uint8 input takes the arithmetic path
    np.testing.assert_array_equal(normalize_segm_crop(floats), _normalize_values(floats))


def _allocator_probe(env_value):
    code = "from d3s_vot.runtime import tune_cpu_allocator; print(tune_cpu_allocator())"
    env = {"PATH": "/usr/bin:/bin"}
    if env_value is not None:
        env["D3S_MALLOC_TUNING"] = env_value
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt exists on Linux only")
def test_allocator_tuning_switch():
    on, off = _allocator_probe(None), _allocator_probe("0")
    assert on.returncode == 0 and on.stdout.strip() == "True", on.stderr
    assert off.returncode == 0 and off.stdout.strip() == "False", off.stderr


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("side,out,shift", [(512, 256, (0, 0)), (300, 256, (40, -30)), (100, 60, (-45, 45))])
def test_blur_of_the_crop_window_equals_blur_then_crop(dtype, side, out, shift):
    from d3s_vot.tracker.augment import _blur, _blurred_crop, _crop_centre

    patch = (torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(side)) * 255).to(dtype)
    for sigma in ((2.0, 0.2), (3.0, 1.0), (0.2, 2.0)):
        torch.testing.assert_close(_blurred_crop(patch, sigma, out, shift),
                                   _crop_centre(_blur(patch, sigma), out, shift), rtol=0, atol=0)


def test_few_output_conv_product_form_matches_the_convolution():
    from d3s_vot.model.segm_head import _apply_block, conv_bn

    block = _randomise_bn(conv_bn(64, 4, 3, relu=True))
    x = torch.randn(1, 64, 37, 29).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        fast = _apply_block(block, x)
        torch.testing.assert_close(fast, block(x), rtol=1e-5, atol=1e-5)
        assert fast.is_contiguous(memory_format=torch.channels_last)
        x64 = x.double()                       # other dtypes and layouts take the module itself
        torch.testing.assert_close(_apply_block(block.double(), x64), block(x64), rtol=0, atol=0)


def test_fused_trunk_equals_the_folded_module():
    """The same oneDNN convolutions: bit-identical where oneDNN picks the same kernel for both paths
    (2 threads on the development machine), float32 rounding apart otherwise."""
    from d3s_vot.model.fused_trunk import FusedTrunk, fused_trunk

    trunk = fold_batchnorm(_randomise_bn(ResNet50Trunk(), seed=3)).to(memory_format=torch.channels_last)
    fused = fused_trunk(trunk, torch.device("cpu"), torch.float32)
    assert isinstance(fused, FusedTrunk)
    x = torch.randn(2, 3, 96, 80).contiguous(memory_format=torch.channels_last)
    taps = ("conv1", "layer1", "layer2", "layer3")
    with torch.no_grad():
        got, want = fused(x, taps), trunk(x, taps)
        assert set(got) == set(taps)
        for name in taps:
            assert (got[name] - want[name]).abs().max() <= 1e-5 * want[name].abs().max(), name
        assert set(fused(x, ("layer1",))) == {"layer1"}
        with pytest.raises(ValueError, match="unknown feature taps"):
            fused(x, ("layer9",))
    assert fused_trunk(trunk.double(), torch.device("cpu"), torch.float64) is None     # float32 only
    with pytest.raises(ValueError, match="folded"):
        FusedTrunk(_randomise_bn(ResNet50Trunk()))


@pytest.mark.slow
def test_tracker_with_fused_trunks_gives_the_same_results():
    from d3s_vot.synthetic.scene import SceneConfig, generate_sequence

    seq = generate_sequence(seed=3, num_frames=6, config=SceneConfig(width=320, height=240))
    w = random_weights(0)
    fused = D3STracker(w, D3SParams(), device="cpu")
    plain = D3STracker(w, D3SParams(fused_cpu_trunks=False), device="cpu")
    assert fused.fused and not plain.fused
    for t in (fused, plain):
        t.initialize(seq.frames[0], seq.polygons[0])
    for frame in seq.frames[1:]:
        a, b = fused.track(frame), plain.track(frame)
        np.testing.assert_allclose(a.region, b.region, atol=1e-2)
        assert np.mean(a.mask != b.mask) < 1e-3


def test_building_a_tracker_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    D3STracker(random_weights(0), D3SParams(), device="cpu")
    torch.testing.assert_close(torch.rand(3), expected, rtol=0, atol=0)
