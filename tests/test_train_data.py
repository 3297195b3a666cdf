"""Training data: config, synthetic YouTube-VOS, dataset parsing, pair sampling and crop processing."""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from PIL import Image

from d3s_vot.synthetic.ytvos import write_ytvos
from d3s_vot.synthetic.scene import SceneConfig
from d3s_vot.train.config import PRESETS, TrainConfig, preset
from d3s_vot.train.processing import (IMAGENET_MEAN, IMAGENET_STD, box_in_crop, crop_and_resize, distance_map,
                                      jitter_box, process_pair)
from d3s_vot.train.sampling import EpochBatches, PairDataset, choose_pair, eligible_sequences
from d3s_vot.train.ytvos import DatasetError, VOSSequence, YouTubeVOS, mask_box, parse_list_file


@pytest.fixture(scope="module")
def ytvos_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ytvos")
    write_ytvos(root, num_videos=3, num_frames=10, seed=3, config=SceneConfig(width=160, height=120))
    return root


# --- config ---------------------------------------------------------------------------------------
def test_paper_preset_is_the_published_recipe():
    cfg = preset("paper")
    assert cfg == TrainConfig()
    assert (cfg.epochs, cfg.iterations, cfg.batch_size, cfg.lr) == (40, 1000, 64, 1e-3)
    assert (cfg.search_area_factor, cfg.output_size, cfg.backbone_bn_mode) == (4.0, 384, "train")
    lrs = [cfg.lr_for_epoch(e) for e in range(1, 41)]
    assert lrs[:14] == [1e-3] * 14
    assert lrs[14:29] == pytest.approx([2e-4] * 15, rel=1e-12)
    assert lrs[29:] == pytest.approx([4e-5] * 11, rel=1e-12)


def test_config_validation_and_round_trip():
    smoke = PRESETS["smoke"]
    assert TrainConfig.from_dict(smoke.to_dict()) == smoke
    with pytest.raises(ValueError, match="unknown training config field.*bogus"):
        TrainConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="backbone_bn_mode"):
        TrainConfig(backbone_bn_mode="eval")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="unknown preset 'fast'"):
        preset("fast")


# --- synthetic YouTube-VOS ------------------------------------------------------------------------
def test_synthetic_ytvos_layout(ytvos_root):
    meta = json.loads((ytvos_root / "meta.json").read_text())
    assert sorted(meta["videos"]) == ["00005e0000", "00005e0001", "00005e0002"]
    frames = sorted(p.name for p in (ytvos_root / "JPEGImages" / "00005e0000").iterdir())
    assert frames == [f"{5 * i:05d}.jpg" for i in range(10)]
    png = Image.open(ytvos_root / "Annotations" / "00005e0002" / "00000.png")
    assert png.mode == "P" and png.size == (160, 120)
    labels = np.asarray(png)
    # the third video has two objects (ids 1 and 2), the others one
    assert set(meta["videos"]["00005e0002"]["objects"]) == {"1", "2"}
    assert set(meta["videos"]["00005e0000"]["objects"]) == {"1"}
    assert set(np.unique(labels)) <= {0, 1, 2} and 2 in labels
    obj = meta["videos"]["00005e0000"]["objects"]["1"]
    assert obj["category"] == "synthetic" and obj["frames"][0] == "00000"
    assert (ytvos_root / "vos-list-val.txt").read_text() == "00005e0002-1\n00005e0002-2\n"
    assert (ytvos_root / "vos-list-train.txt").read_text() == "00005e0000-1\n00005e0001-1\n"


def test_synthetic_cli_writes_dataset(tmp_path):
    from d3s_vot.synthetic.__main__ import main

    assert main(["ytvos", str(tmp_path / "d"), "--videos", "2", "--frames", "3", "--val-videos", "0",
                 "--width", "64", "--height", "48"]) == 0
    assert len(YouTubeVOS(tmp_path / "d")) == 2
    assert main(["ytvos", str(tmp_path / "e"), "--videos", "2", "--val-videos", "2"]) == 2


# --- dataset --------------------------------------------------------------------------------------
def test_dataset_sequences_and_mask_boxes(ytvos_root):
    vos = YouTubeVOS(ytvos_root)
    assert [s.name for s in vos.sequences] == ["00005e0000-1", "00005e0001-1", "00005e0002-1", "00005e0002-2"]
    seq = vos.sequences[3]
    assert seq.frames == tuple(f"{5 * i:05d}" for i in range(10)) and seq.boxes is None
    frame = vos.load_frame(seq, 4)
    labels = np.asarray(Image.open(ytvos_root / "Annotations" / seq.video / f"{seq.frames[4]}.png"))
    assert np.array_equal(frame.mask, (labels == 2).astype(np.uint8))
    ys, xs = np.nonzero(labels == 2)
    assert frame.box.tolist() == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    assert frame.image.shape == (120, 160, 3) and frame.image.dtype == np.uint8
    assert np.isnan(mask_box(np.zeros((3, 3)))).all()


def test_authors_box_files_define_visibility(tmp_path):
    root = tmp_path / "d"
    write_ytvos(root, num_videos=1, num_frames=4, val_videos=0, config=SceneConfig(width=64, height=48))
    lines = ["1,2,10,12", "-1,-1,-1,-1", "3,4,5,6", "0,0,-1,5"]
    (root / "Annotations" / "00005e0000" / "groundtruth-1.txt").write_text("\n".join(lines) + "\n")
    seq = YouTubeVOS(root).sequences[0]
    assert seq.visible.tolist() == [True, False, True, False]
    assert YouTubeVOS(root).load_frame(seq, 2).box.tolist() == [3, 4, 5, 6]
    (root / "Annotations" / "00005e0000" / "groundtruth-1.txt").write_text("1,2,3\n")
    with pytest.raises(DatasetError, match=r"groundtruth-1\.txt:1: expected 'x,y,w,h'"):
        YouTubeVOS(root)


def test_malformed_dataset_errors_name_the_file(tmp_path, ytvos_root):
    with pytest.raises(DatasetError, match="does not exist"):
        YouTubeVOS(tmp_path / "nowhere")
    (tmp_path / "bad").mkdir()
    with pytest.raises(DatasetError, match=r"bad/meta\.json is missing"):
        YouTubeVOS(tmp_path / "bad")
    (tmp_path / "bad" / "meta.json").write_text("{not json")
    with pytest.raises(DatasetError, match=r"bad/meta\.json: not valid JSON"):
        YouTubeVOS(tmp_path / "bad")
    (tmp_path / "bad" / "meta.json").write_text('{"videos": {"v1": {"objects": {"1": {"frames": []}}}}}')
    with pytest.raises(DatasetError, match=r"bad/JPEGImages/v1 is missing"):
        YouTubeVOS(tmp_path / "bad")
    listing = tmp_path / "list.txt"
    listing.write_text("00005e0000-1\n\nnot_a_pair\n")
    with pytest.raises(DatasetError, match=r"list\.txt:3: expected '<video_id>-<object_id>', got 'not_a_pair'"):
        parse_list_file(listing)
    listing.write_text("00005e0000-7\n")
    with pytest.raises(DatasetError, match=r"object 7 of video '00005e0000' is not in .*meta\.json"):
        YouTubeVOS(ytvos_root, parse_list_file(listing), str(listing))


def test_corrupt_frames_are_skipped_and_counted(tmp_path):
    root = tmp_path / "d"
    write_ytvos(root, num_videos=1, num_frames=8, val_videos=0, config=SceneConfig(width=64, height=48))
    (root / "JPEGImages" / "00005e0000" / "00010.jpg").write_bytes(b"not a jpeg")
    cfg = PRESETS["smoke"]
    dataset = PairDataset(YouTubeVOS(root), cfg)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        skipped = sum(dataset[(1, i)]["skipped"] for i in range(12))
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert skipped >= 1 and len(messages) == skipped
    assert all("cannot decode" in m and "00010.jpg" in m for m in messages)


# --- sampling -------------------------------------------------------------------------------------
def _sequence(num_frames: int, visible_idx) -> VOSSequence:
    visible = np.zeros(num_frames, dtype=bool)
    visible[list(visible_idx)] = True
    return VOSSequence("v", 1, tuple(f"{i:05d}" for i in range(num_frames)), visible)


def test_pair_sampling_rules():
    cfg = TrainConfig()
    sequences = [_sequence(19, range(19)), _sequence(300, [0, 1, 2, 3]), _sequence(300, range(0, 300, 3))]
    assert eligible_sequences(sequences, cfg) == [2]   # too short; too few visible; ok
    rng = np.random.default_rng(0)
    gaps = []
    for _ in range(500):
        pair = choose_pair(rng, sequences, [2], cfg)
        assert pair.sequence == 2
        assert sequences[2].visible[pair.train_frame] and sequences[2].visible[pair.test_frame]
        gaps.append(pair.test_frame - pair.train_frame)
    assert max(abs(g) for g in gaps) <= 50 and min(gaps) < -40 and max(gaps) > 40 and 0 in gaps


def test_epoch_batches_split_the_global_batch_across_ranks():
    whole = list(EpochBatches(epoch=3, iterations=2, global_batch=4))
    assert whole == [[(3, 0), (3, 1), (3, 2), (3, 3)], [(3, 4), (3, 5), (3, 6), (3, 7)]]
    rank0 = list(EpochBatches(3, 2, 4, rank=0, world_size=2))
    rank1 = list(EpochBatches(3, 2, 4, rank=1, world_size=2))
    assert [a + b for a, b in zip(rank0, rank1)] == whole
    with pytest.raises(ValueError, match="not divisible"):
        EpochBatches(1, 1, 5, world_size=2)


def test_samples_depend_only_on_epoch_and_index(ytvos_root):
    dataset = PairDataset(YouTubeVOS(ytvos_root), PRESETS["smoke"])
    a, b, c = dataset[(2, 5)], dataset[(2, 5)], dataset[(2, 6)]
    assert all(np.array_equal(a[k], b[k]) for k in a if k != "skipped")
    assert not np.array_equal(a["test_image"], c["test_image"])
    assert a["train_image"].shape == (3, 384, 384) and a["test_dist"].shape == (1, 384, 384)


# --- processing -----------------------------------------------------------------------------------
def _coded_image(height: int, width: int) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    return (xs + 1000 * ys).astype(np.float32)


def test_crop_geometry_padding_and_far_border_quirk():
    image = _coded_image(40, 30)
    # side ceil(sqrt(16)*4) = 16, top-left round(12 - 8) = 4, round(22 - 8) = 14; output 16 = no resampling
    crop, factor = crop_and_resize(image, np.array([10, 20, 4, 4]), 4.0, 16)
    assert factor == 1.0 and np.array_equal(crop, image[14:30, 4:20])
    # Python round: centre 12.5 - 8 = 4.5 -> 4 (half to even)
    crop, _ = crop_and_resize(image, np.array([10.5, 20, 4, 4]), 4.0, 16)
    assert np.array_equal(crop, image[14:30, 4:20])
    # crop ending exactly at the right border (x2 = 30): the last column is dropped, 28 replicated
    crop, _ = crop_and_resize(image, np.array([20, 20, 4, 4]), 4.0, 16)
    assert np.array_equal(crop[:, :15], image[14:30, 14:29]) and np.array_equal(crop[:, 15], image[14:30, 28])
    # left of the image: replicate for images, zeros for masks
    crop, _ = crop_and_resize(image, np.array([-2, 20, 4, 4]), 4.0, 16)
    assert np.array_equal(crop[:, :8], np.repeat(image[14:30, :1], 8, axis=1))
    mask_crop, _ = crop_and_resize(np.ones((40, 30), np.float32), np.array([-2, 20, 4, 4]), 4.0, 16, zero_pad=True)
    assert mask_crop[:, :8].max() == 0 and mask_crop[:, 8:].min() == 1
    resized, factor = crop_and_resize(np.zeros((240, 320, 3), np.uint8), np.array([100, 100, 30, 40]), 4.0, 384)
    assert resized.shape == (384, 384, 3) and factor == 384 / math.ceil(math.sqrt(1200) * 4)


def test_box_in_crop_and_distance_map():
    box = np.array([100.0, 50.0, 30.0, 40.0])
    side = math.ceil(math.sqrt(1200) * 4)
    mapped = box_in_crop(box, box, 384 / side, 384)
    assert mapped[:2] + mapped[2:] / 2 == pytest.approx([191.5, 191.5])
    assert mapped[2:] == pytest.approx(box[2:] * 384 / side)
    dist = distance_map(np.array([191.0, 191.0]), 384)
    assert dist[191, 191] == 0 and dist[0, 0] == pytest.approx(191 * math.sqrt(2))
    assert dist[16 * 3, 16 * 5] == pytest.approx(math.hypot(80 - 191, 48 - 191))


def test_jitter_box_distribution():
    rng = np.random.default_rng(1)
    box = np.array([50.0, 60.0, 20.0, 45.0])
    log_ratio, offsets = [], []
    for _ in range(4000):
        j = jitter_box(box, rng, 0.25, 1.5)
        log_ratio.append(np.log(j[2:] / box[2:]))
        offset = (j[:2] + j[2:] / 2) - (box[:2] + box[2:] / 2)
        offsets.append(offset / (1.5 * math.sqrt(j[2] * j[3])))
    log_ratio, offsets = np.array(log_ratio), np.array(offsets)
    assert log_ratio.std(axis=0) == pytest.approx([0.25, 0.25], rel=0.05)
    assert np.abs(offsets).max() <= 0.5 and offsets.std(axis=0) == pytest.approx([0.2887, 0.2887], rel=0.05)


def test_box_mask_substitution_and_brightness():
    rng = np.random.default_rng(0)
    image = np.full((120, 160, 3), 128, np.uint8)
    mask = np.zeros((120, 160), np.uint8)
    mask[40:70, 60:90] = 1
    mask[40:50, 60:70] = 0                    # not a box: the box mask must differ from it
    box = np.array([60.0, 40.0, 30.0, 30.0])
    other = np.zeros_like(mask)
    cfg = TrainConfig(box_mask_prob=1.0, scale_jitter=0.0, center_jitter=0.0)
    sample = process_pair(image, mask, box, image * 0, other, box + 5, rng, cfg, augment=True)
    assert sample.box_mask_used
    # test sample = the train sample (crops identical without jitter), its mask the real one
    # crop: side 120 at (15, -5), factor 3.2; image pixel (row 45, col 65) -> crop (160, 160)
    assert sample.test_mask[0, 160, 160] == 0 and sample.train_mask[0, 160, 160] == 1  # hole vs filled box
    assert sample.test_mask[0, 208, 208] == 1 and sample.train_mask[0, 208, 208] == 1
    assert np.array_equal(sample.test_image.shape, sample.train_image.shape)
    # brightness: a flat 128 image, each crop scaled by its own factor in [0.8, 1.2]
    factors = [((sample.train_image[c] * IMAGENET_STD[c] + IMAGENET_MEAN[c]) * 255 / 128).mean() for c in range(3)]
    test_factors = [((sample.test_image[c] * IMAGENET_STD[c] + IMAGENET_MEAN[c]) * 255 / 128).mean() for c in range(3)]
    assert 0.8 <= factors[0] <= 1.2 and factors == pytest.approx([factors[0]] * 3, rel=1e-5)
    assert 0.8 <= test_factors[0] <= 1.2 and test_factors[0] != pytest.approx(factors[0], rel=1e-6)
    # distance map centred within +-12.5 % of the box size of the crop centre (no box jitter here)
    dist = sample.test_dist[0]
    cy, cx = np.unravel_index(np.argmin(dist), dist.shape)
    half_range = 0.125 * 30 * 384 / math.ceil(30 * 4) + 1
    assert abs(cx - 191.5) <= half_range and abs(cy - 191.5) <= half_range
    plain = process_pair(image, mask, box, image, mask, box, np.random.default_rng(0),
                         TrainConfig(box_mask_prob=0.0), augment=False)
    assert not plain.box_mask_used
    assert plain.train_image[0].mean() == pytest.approx((128 / 255 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], rel=1e-5)
