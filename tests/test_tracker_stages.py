"""Unit tests of the tracker's stages, each on small inputs or on single steps of the reference run."""
import math

import cv2
import numpy as np
import pytest
import torch

from d3s_vot.params import D3SParams
from d3s_vot.tracker import dcf
from d3s_vot.tracker.bbox_fit import fit_axis_aligned, fit_box_to_mask
from d3s_vot.tracker.crops import centre_distance_map, dcf_patch, segm_crop
from d3s_vot.tracker.fourier import output_window, upsample_scores
from d3s_vot.tracker.localize import localize
from d3s_vot.tracker.regions import parse_region, polygon_to_box


# ------------------------------------------------------------------------------------------- crops
def _naive_dcf_patch(img, pos, sample, out):
    """The documented rule in plain numpy: truncated centre, integer decimation for crops larger
    than ~2.1x the output, replicated borders, then bilinear resize (compared before resizing)."""
    posl = [int(pos[0]), int(pos[1])]
    df = int(max(int(sample / out - 0.1), 1))
    if df > 1:
        off = [p % df for p in posl]
        posl = [(p - o) // df for p, o in zip(posl, off)]
        img = img[off[0]::df, off[1]::df]
    n = max(int(np.round(sample / df)), 2)
    rows = np.clip(np.arange(posl[0] - (n - 1) // 2, posl[0] + n // 2 + 1), 0, img.shape[0] - 1)
    cols = np.clip(np.arange(posl[1] - (n - 1) // 2, posl[1] + n // 2 + 1), 0, img.shape[1] - 1)
    return img[np.ix_(rows, cols)]


@pytest.mark.parametrize("pos,sample", [((20.7, 30.2), 16.0), ((2.0, 3.9), 16.0), ((39.0, 47.5), 33.0),
                                        ((10.0, 12.0), 40.0), ((-3.5, 50.0), 16.0)])
def test_dcf_patch_crop_follows_documented_rule(pos, sample):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, size=(41, 53)).astype(np.float64)
    t = torch.from_numpy(img)[None, None]
    crop = torch.from_numpy(_naive_dcf_patch(img, pos, sample, 16))[None, None]
    expected = crop if crop.shape[-1] == 16 else torch.nn.functional.interpolate(
        crop, size=(16, 16), mode="bilinear", align_corners=False)
    got = dcf_patch(t, pos, sample, 16)
    assert torch.equal(got, expected)


def test_dcf_patch_resizes_bilinear():
    img = torch.arange(64 * 64, dtype=torch.float64).view(1, 1, 64, 64)
    patch = dcf_patch(img, (32.0, 32.0), 32.0, 16)
    crop = img[..., 17:49, 17:49]
    expected = torch.nn.functional.interpolate(crop, size=(16, 16), mode="bilinear", align_corners=False)
    assert torch.equal(patch, expected)


def test_segm_crop_far_side_padding_quirk():
    img = np.tile(np.arange(20, dtype=np.uint8) * 10, (20, 1))[:, :, None].repeat(3, axis=2)
    # a crop that ends exactly at the right border: the last column (190) is dropped and 180 repeated
    crop, factor = segm_crop(img, [14, 8, 4, 4], 2.0, 8)
    assert factor == 1.0
    assert crop[0, :, 0].tolist() == [120, 130, 140, 150, 160, 170, 180, 180]
    # left border: plain replication
    crop, _ = segm_crop(img, [-2, 8, 4, 4], 2.0, 8)
    assert crop[0, :, 0].tolist() == [0, 0, 0, 0, 0, 10, 20, 30]


def test_segm_crop_of_a_window_outside_the_image():
    img = np.tile(np.arange(20, dtype=np.uint8) * 10, (20, 1))[:, :, None].repeat(3, axis=2)
    crop, _ = segm_crop(img, [30, 8, 4, 4], 2.0, 8)          # entirely right of the image
    assert (crop[..., 0] == 190).all()
    mask, _ = segm_crop(np.ones((20, 20), np.float32), [30, 8, 4, 4], 2.0, 8, pad_value=0)
    assert mask.shape == (8, 8) and (mask == 0).all()


def test_centre_distance_map():
    d = centre_distance_map(384)
    assert d.dtype == np.float32 and d[191, 191] == 0.0
    assert d[191, 383] == 192.0 and d[0, 191] == 191.0


# --------------------------------------------------------------------------------- Fourier / window
def _closed_form_upsample(s, n_out):
    """The spec's closed form with exact phases: 17x17 spectrum (Nyquist at +-8), (-1)^(ky+kx)."""
    n = s.shape[0]
    S = np.fft.fft2(s)
    full = np.zeros((n_out, n_out), dtype=complex)
    for ky in range(-n // 2, n // 2 + 1):
        for kx in range(-n // 2, n // 2 + 1):
            full[ky % n_out, kx % n_out] += S[ky % n, kx % n] * (-1) ** (ky + kx)
    return np.real(np.fft.ifft2(full)) * n_out * n_out / (n * n)


def test_fourier_upsampling_matches_closed_form():
    rng = np.random.default_rng(1)
    s = rng.normal(size=(16, 16))
    ours = upsample_scores(torch.from_numpy(s), 256).numpy()
    ref = _closed_form_upsample(s, 256)
    # float32 phase factors, as in the original: ~1e-7 relative
    assert np.abs(ours - ref).max() < 1e-5 * np.abs(ref).max()
    # zero displacement lands at pixel (0, 0) and the map does not interpolate the samples
    assert abs(ours[0, 0] - s[8, 8]) > 1e-3


def test_upsampled_reference_scores_reproduce_recorded_maximum(tracker_ref):
    window = output_window(256, torch.device("cpu"), torch.float64)
    for i in (0, 5, 12, 20):
        raw = torch.from_numpy(tracker_ref["poly/scores_raw"][i, 0, 0])
        up = upsample_scores(raw, 256) * window
        assert abs(up.max().item() - tracker_ref["poly/scores_up_max"][i]) < 1e-9


def test_output_window_peak_and_symmetry():
    w = output_window(256, torch.device("cpu"), torch.float64)[0:1, :].numpy()[0]
    assert w[0] == 1.0 and w[128] == pytest.approx(0.5 * (1 + math.cos(2 * math.pi / 258 * 128)), abs=1e-6)
    np.testing.assert_array_equal(w[1:128], w[129:][::-1])


# ------------------------------------------------------------------------------------ localisation
def _map_with_peaks(peaks):
    m = torch.zeros(256, 256, dtype=torch.float64)
    for (dy, dx), v in peaks:
        m[dy % 256, dx % 256] = v
    return m


def test_localize_single_peak():
    loc = localize(_map_with_peaks([((5, -7), 1.0)]), (40.0, 40.0), D3SParams())
    assert loc.flag == "none" and loc.displacement == (5, -7) and loc.max_score == 1.0


def test_localize_hard_negative_and_not_found():
    p = D3SParams()
    loc = localize(_map_with_peaks([((0, 0), 1.0), ((60, 60), 0.5)]), (40.0, 40.0), p)
    assert loc.flag == "hard_negative" and loc.displacement == (0, 0)
    # the second peak inside the target neighbourhood is masked out
    assert localize(_map_with_peaks([((0, 0), 1.0), ((10, 10), 0.5)]), (40.0, 40.0), p).flag == "none"
    m = torch.full((256, 256), -2.0, dtype=torch.float64)
    assert localize(m, (40.0, 40.0), p).flag == "not_found"


# --------------------------------------------------------------------------------------------- DCF
def test_correlation_scores_from_recorded_sample_and_filter(tracker_ref):
    z = tracker_ref
    for i in (0, 6, 15):
        f = z["poly/filter_after_init"] if i == 0 else z["poly/filter"][i - 1]
        x = torch.from_numpy(z["poly/test_sample"][i].astype(np.float64))[None]
        scores = dcf.correlate(x, torch.from_numpy(f)).numpy()
        np.testing.assert_allclose(scores, z["poly/scores_raw"][i], atol=1e-5)


def _replay_memory(z, upto):
    """Memory after frame index ``upto`` of the polygon run, rebuilt from the recorded pieces."""
    samples = np.zeros((250, 64, 16, 16))
    labels = np.zeros((250, 1, 16, 16))
    samples[:27] = z["poly/init_training_samples"]
    labels[:27] = z["poly/init_labels"]
    for j in range(upto + 1):
        slot = z["poly/memory_slot"][j]
        if slot >= 0:
            samples[slot] = z["poly/test_sample"][j]
            labels[slot, 0] = z["poly/train_label"][j]
    return torch.from_numpy(samples), torch.from_numpy(labels)


def test_filter_cg_step_replays_reference(tracker_ref):
    z = tracker_ref
    p = D3SParams()
    # T index 5 = frame 7, the first hard negative: memory update then one GN step with 5 CG iterations
    i = 5
    assert z["poly/flag"][i] == "hard_negative"
    samples, labels = _replay_memory(z, i)
    weights = torch.from_numpy(z["poly/sample_weights"][i])
    f_prev = torch.from_numpy(z["poly/filter"][i - 1])
    f_new = dcf.filter_gauss_newton_step(f_prev, samples, labels, weights, p.filter_reg,
                                         p.response_activation_alpha, p.hard_negative_cg_iter)
    ref = z["poly/filter"][i]
    assert np.abs(f_new.numpy() - ref).max() < 1e-3 * np.abs(ref).max()
    assert np.abs(f_prev.numpy() - ref).max() > 1e-2 * np.abs(ref).max()   # the step did move the filter


def test_sample_memory_weights_follow_reference(tracker_ref):
    z = tracker_ref
    mem = dcf.SampleMemory(250, 1, 2, torch.float64, torch.device("cpu"))
    mem.init(torch.zeros(27, 1, 2, 2), torch.zeros(27, 1, 2, 2))
    np.testing.assert_allclose(mem.weights.numpy(), z["poly/init_sample_weights"], atol=1e-15)
    p = D3SParams()
    for i in range(21):
        slot = z["poly/memory_slot"][i]
        if slot < 0:
            continue
        lr = p.hard_negative_learning_rate if z["poly/flag"][i] == "hard_negative" else p.learning_rate
        assert mem.insert(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), lr) == slot
        np.testing.assert_allclose(mem.weights.numpy(), z["poly/sample_weights"][i], atol=1e-12)


def test_cg_solves_small_spd_system():
    A = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    b = torch.tensor([1.0, 2.0], dtype=torch.float64)
    (x,) = dcf._cg(lambda p: (A @ p[0],), (b,), 2, precond=None, fletcher_reeves=True)
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(A.numpy(), b.numpy()), atol=1e-12)


def test_mlu_activation_and_gradient():
    x = torch.tensor([-0.1, 0.0, 0.2], dtype=torch.float64, requires_grad=True)
    y = dcf.mlu(x, 0.05)
    np.testing.assert_allclose(y.detach().numpy(), [0.05 * (math.exp(-2) - 1), 0.0, 0.2], atol=1e-15)
    (g,) = torch.autograd.grad(y.sum(), x)
    np.testing.assert_allclose(dcf.mlu_grad(x.detach(), 0.05).numpy(), g.numpy(), atol=1e-15)


# ------------------------------------------------------------------------------------- mask -> box
def test_axis_aligned_fit_of_rectangle_mask():
    mask = np.zeros((60, 80), np.uint8)
    mask[10:30, 20:50] = 1
    assert fit_axis_aligned(mask, optimise=False) == [20, 10, 49, 29]
    corners = fit_box_to_mask(mask, rotated=False)
    np.testing.assert_array_equal(corners, [[20, 10], [49, 10], [49, 29], [20, 29]])


def test_greedy_fit_trims_a_thin_appendix():
    mask = np.zeros((80, 80), np.uint8)
    mask[20:60, 20:60] = 1
    mask[38:42, 60:75] = 1            # a 4-pixel-high spike to the right
    x1, y1, x2, y2 = fit_axis_aligned(mask, optimise=True)
    assert x2 < 70 and y1 >= 20 and y2 <= 59     # the box does not stretch to the spike's end


def test_rotated_fit_recovers_orientation():
    mask = np.zeros((200, 200), np.uint8)
    box = cv2.boxPoints(((100, 100), (120, 40), 30.0))
    cv2.fillConvexPoly(mask, np.round(box).astype(np.int32), 1)
    corners = fit_box_to_mask(mask, rotated=True)
    edge = corners[1] - corners[0]
    angle = math.degrees(math.atan2(edge[1], edge[0])) % 180
    assert min(abs(angle - 30), abs(angle - 120)) < 3
    sides = sorted([np.linalg.norm(corners[0] - corners[1]), np.linalg.norm(corners[1] - corners[2])])
    assert sides[0] == pytest.approx(40, abs=4) and sides[1] == pytest.approx(120, abs=6)


def test_fit_rejects_small_or_empty_masks():
    mask = np.zeros((50, 50), np.uint8)
    assert fit_box_to_mask(mask, rotated=True) is None
    mask[10:16, 10:16] = 1                      # area 25 < 50
    assert fit_box_to_mask(mask, rotated=True) is None


# --------------------------------------------------------------------------------------- regions
def test_polygon_preserve_area_box():
    poly = np.array([10, 0, 20, 10, 10, 20, 0, 10], dtype=float)     # a diamond of side sqrt(200)
    x, y, w, h = polygon_to_box(poly[0::2], poly[1::2])
    assert (w - 1) * (h - 1) == pytest.approx(200.0)
    assert x + w / 2 == pytest.approx(10.0) and y + h / 2 == pytest.approx(10.0)


@pytest.mark.parametrize("region,message", [
    ([10, 10, 0, 5], "positive width"), ([10, 10, -3, 5], "positive width"),
    ([10, np.nan, 5, 5], "NaN"), ([500, 500, 10, 10], "outside"), ([1, 2, 3], "4 numbers"),
    ([0, 0, 0, 0, 0, 0, 0, 0], "degenerate"), (np.zeros((5, 5)), "mask has shape"),
])
def test_bad_regions_are_rejected(region, message):
    with pytest.raises(ValueError, match=message):
        parse_region(region, (100, 120, 3))


def test_region_partly_outside_is_accepted():
    r = parse_region([-10, -5, 30, 20], (100, 120, 3))
    assert r.pos_yx.tolist() == [5.0, 5.0]
