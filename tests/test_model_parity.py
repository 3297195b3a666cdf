"""The segmentation network against the original implementation's outputs (net_ref.npz)."""
import copy

import numpy as np
import pytest
import torch

from d3s_vot.model import SegmNet
from d3s_vot.model.segm_head import topk_similarity

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def _prep(images):
    return torch.from_numpy(((images.astype(np.float64) / 255 - MEAN) / STD).transpose(0, 3, 1, 2).astype(np.float32))


def _dist(centres):
    yy, xx = np.mgrid[0:384, 0:384].astype(np.float64)
    maps = [np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2).astype(np.float32) for cx, cy in centres]
    return torch.from_numpy(np.stack(maps)[:, None])


@pytest.fixture(scope="module")
def net(make_weights):
    model = SegmNet()
    model.load_state_dict(make_weights.segm_state(0), strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def inputs(net_ref):
    return (_prep(net_ref["train_img"]), _prep(net_ref["test_img"]), torch.from_numpy(net_ref["train_mask"]),
            _dist(net_ref["dist_centre_xy"]))


def _intermediates(net, inputs, dtype):
    train, test, mask, dist = (t.to(dtype) for t in inputs)
    model = net.to(dtype)
    with torch.no_grad():
        train_f = model.extract_backbone_features(train)
        test_f = model.extract_backbone_features(test)
        head = model.segm_predictor
        f_test, f_train = head.embed(test_f[3]), head.embed(train_f[3])
        mixer_in = head.gim(f_test, f_train, mask, dist)
        logits = head.decode(mixer_in, test_f)
    return dict(test_f=test_f, f_test=f_test, f_train=f_train, mixer_input=mixer_in, logits=logits)


def test_state_dict_keys_match_checkpoint_layout(net, make_weights):
    reference = make_weights.segm_state(0)
    assert list(net.state_dict().keys()) == list(reference.keys())
    assert net.state_dict()["segm_predictor.mixer.0.weight"].shape == (64, 3, 3, 3)


def test_float64_forward_matches_original(net, inputs, net_ref):
    out = _intermediates(net, inputs, torch.float64)
    np.testing.assert_allclose(out["test_f"][0][0, :4].numpy(), net_ref["f64/test_conv1_b0_c0to3"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(out["test_f"][3][0, :64].numpy(), net_ref["f64/test_layer3_b0_c0to63"], atol=1e-10)
    np.testing.assert_allclose(out["f_test"].numpy(), net_ref["f64/f_test"], atol=1e-10)
    np.testing.assert_allclose(out["f_train"].numpy(), net_ref["f64/f_train"], atol=1e-10)
    np.testing.assert_allclose(out["mixer_input"].numpy(), net_ref["f64/mixer_input"], atol=1e-10)
    np.testing.assert_allclose(out["logits"].numpy(), net_ref["f64/logits"], atol=1e-10)


def test_float32_forward_matches_original(net, inputs, net_ref):
    out = _intermediates(net, inputs, torch.float32)
    logits = out["logits"]
    np.testing.assert_allclose(logits.numpy(), net_ref["f32/logits"], atol=1e-4)
    ref_max = np.abs(net_ref["f32/logits"]).max()
    assert np.abs(logits.numpy() - net_ref["f32/logits"]).max() / ref_max < 1e-5   # issue: 1e-5 relative
    np.testing.assert_allclose(out["mixer_input"][:, :2].numpy(), net_ref["f32/mixer_input"][:, :2], atol=2e-6)
    np.testing.assert_array_equal(out["mixer_input"][:, 2].numpy(), net_ref["f32/mixer_input"][:, 2])
    prob = torch.softmax(logits, dim=1)[:, 0].numpy()
    np.testing.assert_allclose(prob, net_ref["f32/prob_fg"], atol=1e-5)


def test_full_model_call_equals_staged_call(net, inputs, net_ref):
    model = net.to(torch.float64)
    with torch.no_grad():
        logits = model(*(t.to(torch.float64) for t in inputs))
    np.testing.assert_allclose(logits.numpy(), net_ref["f64/logits"], atol=1e-10)


def test_training_mode_loss_float64(net, inputs, net_ref):
    model = copy.deepcopy(net).to(torch.float64).train()   # training mode updates BN statistics
    with torch.no_grad():
        logits = model(*(t.to(torch.float64) for t in inputs))
    target = torch.from_numpy(net_ref["test_mask"]).to(torch.float64)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.cat((target, 1 - target), dim=1))
    np.testing.assert_allclose(logits[:, :, ::8, ::8].numpy(), net_ref["f64/train_mode_logits_sub8"], atol=1e-10)
    assert abs(loss.item() - float(net_ref["f64/train_mode_loss"])) < 1e-10


def test_topk_masking_is_multiplicative():
    # one foreground cell with negative similarity: zeros from masked-out cells win the top-k
    f_train = torch.zeros(1, 2, 1, 4)
    f_train[0, :, 0, 0] = torch.tensor([-1.0, 0.0])
    f_train[0, :, 0, 1:] = torch.tensor([1.0, 0.0]).view(2, 1)
    f_test = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1)
    mask = torch.tensor([1.0, 0.0, 0.0, 0.0]).view(1, 1, 1, 4)
    pos, neg = topk_similarity(f_test, f_train, mask, k=3)
    assert pos.item() == pytest.approx(0.0)        # max(-1, 0, 0, 0) top-3 = 0, 0, 0
    assert neg.item() == pytest.approx(1.0)        # three background cells with similarity 1
