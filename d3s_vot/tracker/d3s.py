"""The D3S online tracker: DCF localisation (GEM) + segmentation (GIM and refinement).

One :class:`D3STracker` holds the two networks (loaded once) and the per-sequence state;
``initialize`` may be called any number of times. Geometry (positions, sizes, scales) is kept in
Python floats (float64); the networks and the DCF run in the configured dtype.
"""
from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch

from ..devices import resolve_device
from ..model import ResNet50Trunk, SegmNet, fold_batchnorm
from ..model.fused_trunk import fused_trunk
from ..params import D3SParams
from . import dcf
from .augment import apply_augmentations, build_augmentations
from .cuda_graphs import GraphedCalls
from .crops import IMAGENET_MEAN, IMAGENET_STD, dcf_patch, round_half_even
from .fourier import output_window, upsample_scores
from .localize import localize
from .mask_output import region_mask
from .regions import InitRegion, parse_region
from .result import TrackResult
from .segmentation import SegmentationMemory, Segmenter
from .stages import StageHook, StageRecorder
from .transfers import upload
from .trunk_precision import TrunkPrecision, compile_trunk


@contextlib.contextmanager
def deterministic_mode(enabled: bool, device: torch.device):
    """CUDA kernel choice, scoped to the tracker's calls (the flags are restored afterwards).

    ``enabled``: bit-identical results run to run (cuDNN deterministic kernels, no autotuning, no
    TF32). Otherwise the fastest convolution kernels: cuDNN autotuning and TF32 convolutions. Matrix
    products never use TF32: they are the DCF's (whose ill-conditioned problems need full float32 at
    least) and the segmentation head's similarities. On CPU torch is deterministic for a fixed
    thread count either way."""
    if device.type != "cuda":
        yield
        return
    cudnn = torch.backends.cudnn
    saved = (cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32 = enabled, not enabled, not enabled
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        cudnn.deterministic, cudnn.benchmark, cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def load_networks(weights) -> Tuple[SegmNet, ResNet50Trunk]:
    """(segmentation network, DCF trunk) with the weights' exact keys (``strict``). Built without
    random initialisation (the weights replace it anyway): faster, and torch's global random number
    generator is left alone."""
    with torch.device("meta"):
        segm_net, dcf_net = SegmNet(), ResNet50Trunk()
    segm_net.load_state_dict(weights.segm_state, strict=True, assign=True)
    dcf_net.load_state_dict(weights.backbone_state, strict=True, assign=True)
    return segm_net, dcf_net


def check_image(image: Any, expected_shape: Optional[tuple] = None) -> np.ndarray:
    """Validate an H x W x 3 uint8 RGB frame; raise ValueError saying what is wrong and how to fix it."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array (H x W x 3 uint8 RGB), got {type(image).__name__}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        raise ValueError(f"image is grayscale (shape {image.shape}); D3S needs H x W x 3 RGB: "
                         "convert with np.repeat(img[..., None], 3, axis=2) or cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)")
    if image.ndim != 3 or image.shape[2] != 3:
        extra = " (RGBA? drop the alpha channel: img[..., :3])" if image.ndim == 3 and image.shape[2] == 4 else ""
        raise ValueError(f"image must have shape H x W x 3, got {image.shape}{extra}")
    if image.dtype != np.uint8:
        hint = " (16-bit? scale to 8 bits: (img >> 8).astype(np.uint8))" if image.dtype == np.uint16 else ""
        raise ValueError(f"image must be uint8, got {image.dtype}{hint}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"image of {image.shape[1]}x{image.shape[0]} pixels is too small")
    if expected_shape is not None and image.shape[:2] != expected_shape:
        raise ValueError(f"frame size {image.shape[1]}x{image.shape[0]} differs from the initialisation frame "
                         f"{expected_shape[1]}x{expected_shape[0]}; call initialize() for a new sequence")
    return np.ascontiguousarray(image)


@dataclass
class _State:
    """Everything that changes during a sequence."""
    region: InitRegion
    image_hw: tuple
    pos: List[float]                 # (y, x)
    target_sz: List[float]           # (h, w)
    target_scale: float
    base_target_sz: List[float]
    min_scale: float
    max_scale: float
    sample_size: int                 # DCF sample side (256)
    feature_size: int                # 16
    sigma: float
    projection: torch.Tensor
    filter: torch.Tensor
    memory: dcf.SampleMemory
    segm: Optional[SegmentationMemory]
    vos: bool
    frame_num: int = 1
    scores: np.ndarray = field(default_factory=lambda: np.array([1.0]))
    uncertainty: float = 0.0


class D3STracker:
    """D3S tracker. ``D3STracker(weights, params=D3SParams(), device=None, dtype=torch.float32)``.

    ``weights``: a :class:`d3s_vot.weights.D3SWeights` (or anything with ``segm_state`` and
    ``backbone_state`` dicts). ``device``: 'cuda', 'cpu' or None (CUDA when available).
    Images are H x W x 3 uint8 RGB numpy arrays.
    """

    def __init__(self, weights, params: Optional[D3SParams] = None, device=None, dtype: torch.dtype = torch.float32):
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.params = params if params is not None else D3SParams()
        self.device = resolve_device(device)
        self.dtype = dtype
        # the DCF's optimisation problem is ill-conditioned; solving it in float64 keeps the float32
        # tracker close to the float64 (reference) trajectory at little cost (64 channels, 16x16 maps)
        self.dcf_dtype = torch.float64 if self.params.dcf_float64 else dtype
        self.segm_net, self.dcf_net = load_networks(weights)
        # float64 is the reference mode: it keeps the original's conv -> BatchNorm order (the joint
        # Gauss-Newton amplifies even float64 rounding differences to ~1e-6 in the projection)
        self.folded = self.params.fold_batchnorm and dtype != torch.float64
        if self.folded:
            self.segm_net, self.dcf_net = fold_batchnorm(self.segm_net), fold_batchnorm(self.dcf_net)
        # the faster NHWC convolution kernels exist for float32/bfloat16, not for float64
        self.memory_format = torch.channels_last if (self.params.channels_last and dtype != torch.float64) \
            else torch.contiguous_format
        for net in (self.segm_net, self.dcf_net):
            net.eval().requires_grad_(False).to(device=self.device, dtype=dtype, memory_format=self.memory_format)
        self.fused = False
        if self.folded and self.params.fused_cpu_trunks and self.memory_format == torch.channels_last:
            dcf_fused = fused_trunk(self.dcf_net, self.device, dtype)
            segm_fused = fused_trunk(self.segm_net.feature_extractor, self.device, dtype)
            if dcf_fused is not None and segm_fused is not None:
                self.dcf_net, self.segm_net.feature_extractor = dcf_fused, segm_fused
                self.fused = True
        # CUDA fast paths (off by default; no-ops on the CPU): bfloat16 trunks, compiled trunks
        self.trunk_precision = TrunkPrecision(self.device, self.params.bf16_trunks)
        if self.params.compile_trunks and self.device.type == "cuda":
            self.dcf_net = compile_trunk(self.dcf_net)
            self.segm_net.feature_extractor = compile_trunk(self.segm_net.feature_extractor)
        # each frame's network calls as CUDA-graph replays (d3s_vot.tracker.cuda_graphs); compiled
        # trunks record their own graphs
        self.graphs = GraphedCalls(self.device, self.params.cuda_graphs and not self.params.compile_trunks,
                                   exact=self.params.deterministic)
        # optional profiling hooks (d3s_vot.tracker.stages): no recorder, the default, records nothing
        self._stage = StageHook()
        self.segmenter = Segmenter(self.segm_net, self.params, self.device, dtype, self.memory_format,
                                   stage=self._stage, trunk_precision=self.trunk_precision, graphs=self.graphs)
        shape = (1, 3, 1, 1)
        self._mean = upload(torch.tensor(IMAGENET_MEAN, dtype=dtype), self.device).view(shape)
        self._std = upload(torch.tensor(IMAGENET_STD, dtype=dtype), self.device).view(shape)
        self._window: Optional[torch.Tensor] = None
        self._state: Optional[_State] = None
        self.debug: Dict[str, Any] = {}

    def fork(self) -> "D3STracker":
        """A tracker for another target that shares this one's networks, parameters, device and
        stage hook (nothing is copied or reloaded) and starts uninitialised: N targets in one
        sequence are N forks, each with its own per-sequence state."""
        twin = copy.copy(self)
        twin._state = None
        twin.debug = {}
        return twin

    # ------------------------------------------------------------------------------------------
    @property
    def initialized(self) -> bool:
        return self._state is not None

    @property
    def stage_recorder(self) -> Optional[StageRecorder]:
        """Where ``initialize`` and ``track`` report their stages (:mod:`d3s_vot.tracker.stages`);
        None (the default): nowhere."""
        return self._stage.recorder

    @stage_recorder.setter
    def stage_recorder(self, recorder: Optional[StageRecorder]) -> None:
        self._stage.recorder = recorder

    @contextlib.contextmanager
    def record_stages(self, recorder: Optional[StageRecorder]) -> Iterator[Optional[StageRecorder]]:
        """Report the named steps of ``initialize`` and ``track`` to ``recorder`` (see
        :mod:`d3s_vot.tracker.stages`) inside the ``with`` block; the previous recorder afterwards."""
        previous, self.stage_recorder = self.stage_recorder, recorder
        try:
            yield recorder
        finally:
            self.stage_recorder = previous

    def _image_tensor(self, image: np.ndarray) -> torch.Tensor:
        """The frame on the device as 1 x 3 x H x W in the trackers' dtype: uploaded as uint8 from
        pinned memory (no host synchronisation on CUDA), converted there."""
        return upload(image, self.device).permute(2, 0, 1).unsqueeze(0).to(self.dtype)

    def _dcf_features(self, patches: torch.Tensor) -> torch.Tensor:
        """layer3 of the ImageNet ResNet-50, each sample divided by its RMS."""
        x = ((patches / 255 - self._mean) / self._std).contiguous(memory_format=self.memory_format)
        with self.trunk_precision():
            feat = self.dcf_net(x, ("layer3",))["layer3"]
        feat = self.trunk_precision.restore(feat, self.dtype).contiguous()
        n = feat.shape[1] * feat.shape[2] * feat.shape[3]
        norm = (torch.sum(feat.abs().reshape(feat.shape[0], 1, 1, -1) ** 2, dim=3, keepdim=True) / n + 1e-10) ** 0.5
        return feat / norm

    def _frame_features(self, patch: torch.Tensor) -> torch.Tensor:
        """The DCF features of a frame's 1 x 3 x S x S patch, in the DCF's dtype (a graphed call)."""
        return self._dcf_features(patch).to(self.dcf_dtype)

    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def initialize(self, image: np.ndarray, region) -> None:
        """Start a sequence. ``region``: 0-based [x, y, w, h], 8-number polygon or H x W mask."""
        self._state = None      # a failed initialisation must not leave the previous sequence usable
        image = check_image(image)
        init = parse_region(region, image.shape)
        with deterministic_mode(self.params.deterministic, self.device):
            self._state = self._initialize(image, init)

    def _initialize(self, image: np.ndarray, init: InitRegion) -> _State:
        p = self.params
        h, w = float(init.size_hw[0]), float(init.size_hw[1])
        pos = [float(init.pos_yx[0]), float(init.pos_yx[1])]
        max_area = float(p.image_sample_size ** 2)
        search_area = (h * p.search_area_scale) * (w * p.search_area_scale)
        target_scale = math.sqrt(search_area / max_area)   # the sample always has image_sample_size^2 pixels
        base = [h / target_scale, w / target_scale]
        stride = p.feature_stride
        sample = round_half_even(math.sqrt((base[0] * p.search_area_scale) * (base[1] * p.search_area_scale)))
        sample = int(sample + stride - (sample + stride) % (2 * stride))
        feat_sz = sample // stride
        if self._window is None or self._window.shape[-1] != sample:
            self._window = output_window(sample, self.device, self.dcf_dtype)
        with self._stage("image_to_tensor"):
            im = self._image_tensor(image)

        # augmented first-frame samples
        with self._stage("augmentation"):
            augs = build_augmentations(sample, p.aug_relative_shifts, p.aug_fliplr, p.aug_blurs, p.aug_rotations) \
                if p.use_augmentation else build_augmentations(sample, (), False, (), ())
            expansion = int(sample * p.augmentation_expansion_factor)
            expansion += (expansion - sample) % 2
            centre = [round_half_even(pos[0]), round_half_even(pos[1])]
            patch = dcf_patch(im, centre, target_scale * expansion, expansion)
            samples = apply_augmentations(patch, augs, sample)
        with self._stage("trunk_batch"):
            feats = self._dcf_features(samples).to(self.dcf_dtype)
            self.graphs.prepare("dcf_features", self._frame_features, samples[:1])
        with self._stage("pca"):
            projection = dcf.pca_projection(feats, p.compressed_dim, cov_dtype=self.dtype)

        # labels: Gaussian at the target centre, moved by the translations
        with self._stage("labels"):
            sigma = math.sqrt((feat_sz / sample * base[0]) * (feat_sz / sample * base[1])) * p.output_sigma_factor
            kernel_offset = 0.5 * ((p.kernel_size + 1) % 2)
            centre_norm = [(pos[i] - centre[i]) / (target_scale * sample) for i in range(2)]
            labels = torch.stack([
                dcf.gaussian_label(feat_sz, sigma, [feat_sz * centre_norm[i] + kernel_offset
                                                    + a.shift[i] / sample * feat_sz for i in range(2)],
                                   self.dcf_dtype, self.device)
                for a in augs]).unsqueeze(1)

        filt = feats.new_zeros(1, p.compressed_dim, p.kernel_size, p.kernel_size)
        problem = dcf.JointProblem(feats, labels, 1.0 / feats.shape[0], p.filter_reg, p.projection_reg,
                                   p.response_activation_alpha)
        if p.init_gn_iter > 0:
            with self._stage("joint_gauss_newton"):
                filt, projection = dcf.joint_gauss_newton(problem, filt, projection, p.init_gn_iter,
                                                          p.init_cg_iter // p.init_gn_iter, zero_start=True)
        with self._stage("memory_init"):
            memory = dcf.SampleMemory(p.sample_memory_size, p.compressed_dim, feat_sz, self.dcf_dtype, self.device)
            memory.init(dcf.project(feats, projection), labels)
        if p.post_init_cg_iter > 0:
            with self._stage("post_init_filter_update"):
                filt = dcf.filter_gauss_newton_step(filt, memory.samples, memory.labels, memory.device_weights,
                                                    p.filter_reg, p.response_activation_alpha, p.post_init_cg_iter,
                                                    memory.active)

        segm = None
        vos = init.mask is not None
        if p.use_segmentation or vos:
            with self._stage("segmentation_init"):
                segm = self.segmenter.initialize(image, init.box_xywh, init.polygon, init.size_hw, init.mask)
        self.debug = {"init_labels": labels, "init_samples": memory.samples[:feats.shape[0]].clone(),
                      "projection": projection, "filter": filt.clone(), "sigma": sigma,
                      "init_target_scale": target_scale, "base_target_sz": list(base)}
        return _State(region=init, image_hw=image.shape[:2], pos=pos, target_sz=[h, w], target_scale=target_scale,
                      base_target_sz=base, min_scale=max(10 / base[0], 10 / base[1]),
                      max_scale=min(image.shape[0] / base[0], image.shape[1] / base[1]), sample_size=sample,
                      feature_size=feat_sz, sigma=sigma, projection=projection, filter=filt, memory=memory,
                      segm=segm, vos=vos)

    # ------------------------------------------------------------------------------------------
    def _update_state(self, st: _State, new_pos, new_scale: float) -> None:
        st.target_scale = min(max(new_scale, st.min_scale), st.max_scale)
        st.target_sz = [st.base_target_sz[0] * st.target_scale, st.base_target_sz[1] * st.target_scale]
        inside = [(0.2 - 0.5) * s for s in st.target_sz]
        st.pos = [max(min(new_pos[i], st.image_hw[i] - inside[i]), inside[i]) for i in range(2)]

    def _label(self, st: _State, sample_pos, sample_scale: float) -> torch.Tensor:
        p = self.params
        offset = 0.5 * ((p.kernel_size + 1) % 2)
        centre = [st.feature_size * ((st.pos[i] - sample_pos[i]) / (sample_scale * st.sample_size)) + offset
                  for i in range(2)]
        return dcf.gaussian_label(st.feature_size, st.sigma, centre, self.dcf_dtype, self.device).view(
            1, 1, *([st.feature_size] * 2))

    @torch.no_grad()
    def track(self, image: np.ndarray) -> TrackResult:
        """Track the target into the next frame."""
        if self._state is None:
            raise RuntimeError("track() called before initialize(); initialise the tracker on the first frame")
        st = self._state
        image = check_image(image, st.image_hw)
        with deterministic_mode(self.params.deterministic, self.device):
            return self._track(st, image)

    def _track(self, st: _State, image: np.ndarray) -> TrackResult:
        p = self.params
        st.frame_num += 1
        sample_pos = list(st.pos)
        sample_scale = st.target_scale
        with self._stage("image_to_tensor"):
            im = self._image_tensor(image)
        with self._stage("dcf_crop"):
            patch = dcf_patch(im, sample_pos, sample_scale * st.sample_size, st.sample_size)
        with self._stage("dcf_trunk"):
            feats = self.graphs("dcf_features", self._frame_features, patch)
        with self._stage("dcf_localize"):
            test_x = dcf.project(feats, st.projection)
            scores_raw = dcf.correlate(test_x, st.filter)
            scores = upsample_scores(scores_raw[0, 0], st.sample_size) * self._window
            neighbourhood = (p.target_neighborhood_scale * st.target_sz[0] / st.target_scale,
                             p.target_neighborhood_scale * st.target_sz[1] / st.target_scale)
            loc = localize(scores, neighbourhood, p)
        translation = [loc.displacement[i] * 1.0 * st.target_scale for i in range(2)]
        new_pos = [sample_pos[i] + translation[i] for i in range(2)]

        max_score = loc.max_score
        history_mean = float(np.mean(st.scores))
        if st.frame_num <= 5:
            uncert = 0.0
        elif max_score == 0.0 or not math.isfinite(max_score):
            uncert = math.inf  # no response at all (e.g. a zero filter): the target is not found
        else:
            uncert = history_mean / max_score
        st.uncertainty = uncert
        if uncert < p.tracking_uncertainty_thr:
            st.scores = np.append(st.scores, max_score)
            if st.scores.size > p.response_budget_sz:
                st.scores = np.delete(st.scores, 0)
        if loc.flag == "not_found":
            uncert = 100.0
        if uncert < p.tracking_uncertainty_thr:
            self._update_state(st, new_pos, sample_scale)
        new_pos = [min(max(new_pos[i], 0.0), st.image_hw[i] - 1.0) for i in range(2)]

        seg = None
        if st.segm is not None and (st.vos or (p.use_segmentation and uncert < p.uncertainty_segment_thr)):
            seg = self.segmenter.segment(image, np.array(new_pos), np.array(st.target_sz), st.segm,
                                         rotated=st.region.rotated, vos=st.vos, uncertainty=st.uncertainty,
                                         target_scale=st.target_scale)
            if seg.new_scale is not None:
                st.target_scale = float(seg.new_scale)
            if seg.new_pos_yx is not None:
                st.pos = [float(seg.new_pos_yx[0]), float(seg.new_pos_yx[1])]
            if seg.region is None:
                st.pos = list(new_pos)
        else:
            st.pos = list(new_pos)

        slot, label = -1, None
        hard_negative = loc.flag == "hard_negative"
        if uncert < p.tracking_uncertainty_thr:
            with self._stage("memory_update"):
                label = self._label(st, sample_pos, sample_scale)
                lr = p.hard_negative_learning_rate if hard_negative else p.learning_rate
                slot = st.memory.insert(test_x, label, lr)
        cg = p.hard_negative_cg_iter if hard_negative else (p.cg_iter if (st.frame_num - 1) % p.train_skipping == 0 else 0)
        if cg > 0:
            with self._stage("filter_update"):
                st.filter = dcf.filter_gauss_newton_step(st.filter, st.memory.samples, st.memory.labels,
                                                         st.memory.device_weights, p.filter_reg,
                                                         p.response_activation_alpha, cg, st.memory.active)

        self.debug = {"sample_pos": sample_pos, "test_sample": test_x, "scores_raw": scores_raw,
                      "translation_vec": translation, "memory_slot": slot, "train_label": label,
                      "segm_called": seg is not None, "segm_prob": None if seg is None else seg.prob,
                      "segm_region": None if seg is None else seg.region}
        return self._result(st, image, loc, max_score, history_mean, seg)

    # ------------------------------------------------------------------------------------------
    def _result(self, st: _State, image: np.ndarray, loc, max_score: float, history_mean: float, seg) -> TrackResult:
        h, w = st.target_sz
        used_segm = seg is not None and seg.region is not None
        if used_segm:
            region = np.asarray(seg.region, dtype=np.float64)
        else:
            region = np.array([st.pos[1] - (w - 1) / 2, st.pos[0] - (h - 1) / 2, w, h])
        if st.region.rotated:
            if region.size == 8:
                polygon = region.reshape(4, 2)
            else:
                x, y, bw, bh = region
                polygon = np.array([[x, y], [x + bw, y], [x + bw, y + bh], [x, y + bh]])
            x1, y1 = polygon.min(axis=0)
            x2, y2 = polygon.max(axis=0)
            box = np.array([x1, y1, x2 - x1, y2 - y1])
        else:
            polygon = None
            box = region - np.array([1.0, 1.0, 0.0, 0.0]) if used_segm else region.copy()
        crop_mask = seg.crop_mask if seg is not None else None
        with self._stage("full_image_mask"):
            mask = crop_mask.full_mask(image.shape[:2]) if crop_mask is not None \
                else region_mask(image.shape[:2], polygon, box)
        if loc.flag == "not_found" or not math.isfinite(max_score):
            score = 0.0
        else:
            score = float(min(max(max_score / history_mean, 0.0), 1.0)) if history_mean > 0 else 0.0
        return TrackResult(box=box, polygon=polygon, mask=mask, score=score, region=region.copy() if region.size == 8 else box.copy(),
                           original_output=region,
                           position=np.array(st.pos), target_size=np.array(st.target_sz), scale=float(st.target_scale),
                           flag=loc.flag, uncertainty=float(st.uncertainty), max_score=float(max_score),
                           segmentation_used=used_segm, crop_mask=crop_mask)
