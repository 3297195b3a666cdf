"""The segmentation step of D3S: first-frame GIM memory, per-frame mask, and mask -> region."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, List, Optional, Tuple

import cv2
import numpy as np
import torch

from ..model import SegmNet
from ..params import D3SParams
from .bbox_fit import MIN_CONTOUR_AREA, external_contours, fit_box_to_mask
from .cuda_graphs import GraphedCalls
from .crops import (centre_distance_map, device_normalize_table, normalize_segm_crop_tensor, segm_crop,
                    segm_crop_window)
from .mask_output import CropMask, box_mode_crop_mask, vos_crop_mask
from .regions import polygon_to_box
from .stages import StageHook
from .transfers import download, upload
from .trunk_precision import TrunkPrecision


@dataclass
class SegmentationMemory:
    """What the first frame leaves for every later segmentation call."""
    train_feats: List[torch.Tensor]
    train_embedding: torch.Tensor       # GIM embedding of the first frame (computed once)
    train_mask: torch.Tensor            # 1 x 1 x S x S, float32 values
    dist_map: torch.Tensor              # 1 x 1 x S x S, float32 values
    mask_pixels: np.ndarray             # FIFO of target pixel counts (crop pixels)
    init_prob: Optional[np.ndarray] = None
    init_crop: Optional[np.ndarray] = None
    init_mask_crop: Optional[np.ndarray] = None
    init_crop_factor: float = 1.0


@dataclass
class SegmentationOutput:
    prob: np.ndarray                    # S x S foreground probability (float32 in float32 mode)
    crop_factor: float
    crop_window: Tuple[int, int, int]   # x1, y1, side of the crop in the image
    region: Optional[np.ndarray] = None     # 8 (rotated) or 4 numbers, original conventions
    crop_mask: Optional[CropMask] = None    # what the original's mask writer used (see mask_output)
    new_scale: Optional[float] = None
    new_pos_yx: Optional[np.ndarray] = None


def _to_tensor(array: np.ndarray, device, dtype) -> torch.Tensor:
    return upload(array, device, dtype)


class Segmenter:
    """Runs the segmentation network on crops centred on the DCF estimate.

    ``stage``: the tracker's stage function (a :class:`~d3s_vot.tracker.stages.StageHook`; default: one
    without a recorder); ``segment`` runs its steps inside ``stage("segm_crop")``, ``"segm_trunk"``,
    ``"segm_head"`` and ``"mask_to_box"``."""

    def __init__(self, net: SegmNet, params: D3SParams, device: torch.device, dtype: torch.dtype,
                 memory_format: torch.memory_format = torch.contiguous_format,
                 stage: Optional[Callable[[str], ContextManager[Any]]] = None,
                 trunk_precision: Optional[TrunkPrecision] = None, graphs: Optional[GraphedCalls] = None):
        self.net = net
        self._graphs = graphs if graphs is not None else GraphedCalls(device, enabled=False)
        self._precision = trunk_precision if trunk_precision is not None else TrunkPrecision(device, False)
        self._stage = stage if stage is not None else StageHook()
        self.memory_format = memory_format
        self.params = params
        self.device = device
        self.dtype = dtype
        self._dist = _to_tensor(centre_distance_map(params.segm_output_sz), device, dtype)[None, None]
        self._table = device_normalize_table(device)

    def _trunk(self, crop: torch.Tensor) -> List[torch.Tensor]:
        """The backbone taps, in the trackers' dtype, of an S x S x 3 uint8 RGB crop on the device: the
        crop travels as uint8 and is normalised with the device copy of the normalisation table (a
        graphed call)."""
        values = normalize_segm_crop_tensor(crop, self._table)
        x = values.to(self.dtype).permute(2, 0, 1).unsqueeze(0).contiguous(memory_format=self.memory_format)
        with self._precision():
            taps = self.net.extract_backbone_features(x)
        return [self._precision.restore(t, self.dtype) for t in taps]

    def _features(self, crop: np.ndarray) -> List[torch.Tensor]:
        return self._graphs("segm_trunk", self._trunk, upload(crop, self.device))

    def _foreground(self, *inputs: torch.Tensor) -> torch.Tensor:
        """The S x S foreground probability from the four test taps, the train embedding, the train
        mask and the distance map (a graphed call)."""
        *test_feats, embedding, train_mask, dist = inputs
        logits = self.net.segm_predictor.predict(test_feats, embedding, train_mask, dist)
        return torch.softmax(logits, dim=1)[0, 0]

    @staticmethod
    def _head_inputs(test_feats, memory: SegmentationMemory) -> List[torch.Tensor]:
        return [*test_feats, memory.train_embedding, memory.train_mask, memory.dist_map]

    def _probability(self, test_feats, memory: SegmentationMemory) -> np.ndarray:
        # the foreground map comes to the host once: the contours, the box fit and the output mask
        # (mask_output) all need it there; the contours' threshold is applied to this host copy
        return download(self._graphs("segm_head", self._foreground, *self._head_inputs(test_feats, memory)))

    @torch.no_grad()
    def initialize(self, image: np.ndarray, box_xywh: np.ndarray, polygon: np.ndarray, size_hw: np.ndarray,
                   init_mask: Optional[np.ndarray]) -> SegmentationMemory:
        p = self.params
        crop, factor = segm_crop(image, box_xywh, p.segm_search_area_factor, p.segm_output_sz)
        feats = self._graphs.keep(self._features(crop))         # kept in the memory
        embedding = self.net.segm_predictor.embed(feats[3])
        if init_mask is not None:
            mask_crop, _ = segm_crop(init_mask.astype(np.float32), box_xywh, p.segm_search_area_factor,
                                     p.segm_output_sz, pad_value=0)
            train_mask = (mask_crop > 0.1).astype(np.float32)
            # quirk kept: the pixel history starts from the full-image mask, not the crop
            pixels = np.sum(init_mask.astype(np.float32))
            prob = None
        else:
            raster = np.zeros(image.shape[:2], dtype=np.int32)
            cv2.fillConvexPoly(raster, np.asarray(polygon).astype(np.int32), 1)
            mask_crop, _ = segm_crop(raster.astype(np.float32), box_xywh, p.segm_search_area_factor,
                                     p.segm_output_sz, pad_value=0)
            mask_tensor = _to_tensor(mask_crop, self.device, self.dtype)[None, None]
            memory0 = SegmentationMemory(feats, embedding, mask_tensor, self._dist, np.zeros(0))
            prob = self._probability(feats, memory0)
            binary = (prob > p.init_segm_mask_thr).astype(np.float32)
            k = max(5, int(round(0.05 * float(min(size_hw)) * factor)))
            dilated = cv2.dilate(mask_crop, np.ones((k, k), np.uint8), iterations=1)
            train_mask = binary * dilated
            pixels = np.sum(train_mask)
        memory = SegmentationMemory(feats, embedding, _to_tensor(train_mask, self.device, self.dtype)[None, None],
                                    self._dist, np.array([pixels]), init_prob=prob, init_crop=crop,
                                    init_mask_crop=mask_crop, init_crop_factor=factor)
        if init_mask is not None:
            # a mask initialisation runs no head: record its graph now, not in the first frame
            self._graphs.prepare("segm_head", self._foreground, *self._head_inputs(feats, memory))
        return memory

    @torch.no_grad()
    def segment(self, image: np.ndarray, pos_yx: np.ndarray, size_hw: np.ndarray, memory: SegmentationMemory,
                rotated: bool, vos: bool, uncertainty: float, target_scale: float) -> SegmentationOutput:
        """Segment around ``pos_yx`` and turn the mask into a region, a scale and a position
        (each may be None), updating the pixel-count history in ``memory``."""
        p = self.params
        box = [pos_yx[1] - size_hw[1] / 2, pos_yx[0] - size_hw[0] / 2, size_hw[1], size_hw[0]]
        with self._stage("segm_crop"):
            crop, factor = segm_crop(image, box, p.segm_search_area_factor, p.segm_output_sz)
            crop_tensor = upload(crop, self.device)
        with self._stage("segm_trunk"):
            feats = self._graphs("segm_trunk", self._trunk, crop_tensor)
        with self._stage("segm_head"):
            prob = self._probability(feats, memory)
        out = SegmentationOutput(prob=prob, crop_factor=factor, crop_window=segm_crop_window(box, p.segm_search_area_factor))
        with self._stage("mask_to_box"):
            self._mask_to_region(out, pos_yx, memory, rotated, vos, uncertainty, target_scale)
        return out

    def _mask_to_region(self, out: SegmentationOutput, pos_yx: np.ndarray, memory: SegmentationMemory,
                        rotated: bool, vos: bool, uncertainty: float, target_scale: float) -> None:
        """Fill ``out``'s crop mask, region, scale and position from its probability map (each
        stays None when the mask does not give it)."""
        p = self.params
        prob, factor = out.prob, out.crop_factor
        thr = p.vos_segm_mask_thr if vos else p.segm_mask_thr
        binary = (prob > thr).astype(np.uint8)
        contours, areas = external_contours(binary)
        if vos:
            binary = np.zeros(binary.shape, dtype=np.uint8)
            cv2.drawContours(binary, contours, -1, 1, thickness=-1)
            out.crop_mask = vos_crop_mask(prob, out.crop_window)
        if not areas or max(areas) <= MIN_CONTOUR_AREA:
            return
        contour = contours[int(np.argmax(areas))]
        points = contour.reshape(-1, 2)
        rect = np.reshape(cv2.boxPoints(cv2.minAreaRect(points)), (4, 2))
        fitted = None
        if p.segm_optimize_polygon:
            if not vos:
                binary = np.zeros(binary.shape, dtype=np.uint8)
                cv2.drawContours(binary, [contour], -1, 1, thickness=-1)
                out.crop_mask = box_mode_crop_mask(prob, binary, out.crop_window)
            candidate = fit_box_to_mask(binary.astype(np.int32), rotated=rotated)
            if candidate is not None:
                ratio = _side_product(candidate) / _side_product(rect)
                if 0.1 < ratio < 2.5:
                    fitted = candidate
        half = np.array([binary.shape[0] / 2, binary.shape[1] / 2])
        centre_xy = np.array([pos_yx[1], pos_yx[0]])
        rect_img = _crop_to_image(rect, half, factor, centre_xy)
        pixels_ratio = 0.0
        if p.segm_scale_estimation:
            target_pixels = np.max(areas)
            mean_pixels = np.mean(memory.mask_pixels)
            # an empty first-frame mask leaves no pixel history: any mask is then infinitely far from it
            # (what numpy's division gives, without its divide-by-zero warning)
            pixels_ratio = abs(mean_pixels - target_pixels) / mean_pixels if mean_pixels > 0 else math.inf
            if uncertainty < p.uncertainty_segm_scale_thr and pixels_ratio < p.segm_pixels_ratio:
                memory.mask_pixels = np.append(memory.mask_pixels, target_pixels)
                if memory.mask_pixels.size > p.mask_pixels_budget_sz:
                    memory.mask_pixels = np.delete(memory.mask_pixels, 0)
                aabb = polygon_to_box(rect_img[:, 0], rect_img[:, 1])
                scale = math.sqrt(aabb[2] * aabb[3]) * p.search_area_scale / p.image_sample_size
                if scale > p.segm_min_scale and abs(scale - target_scale) / target_scale < p.max_rel_scale_ch_thr:
                    lo = p.vos_min_scale_change_factor if vos else p.min_scale_change_factor
                    hi = p.vos_max_scale_change_factor if vos else p.max_scale_change_factor
                    out.new_scale = max(target_scale * lo, min(target_scale * hi, scale))
        if not p.segm_scale_estimation or pixels_ratio < p.consider_segm_pixels_ratio:
            out.new_pos_yx = np.array([np.mean(rect_img[:, 1]), np.mean(rect_img[:, 0])])
        if not p.segm_scale_estimation or pixels_ratio < p.segm_pixels_ratio:
            corners = _crop_to_image(fitted, half, factor, centre_xy) if fitted is not None else rect_img
            if rotated:
                out.region = corners.reshape(-1).astype(np.float64)
            else:
                x1, y1 = np.min(corners[:, 0]), np.min(corners[:, 1])
                out.region = np.array([x1 + 1, y1 + 1, np.max(corners[:, 0]) - x1 + 1, np.max(corners[:, 1]) - y1 + 1])


def _side_product(corners: np.ndarray):
    """Area of a rectangle from two adjacent sides (in the corners' own precision)."""
    return np.linalg.norm(corners[0] - corners[1]) * np.linalg.norm(corners[1] - corners[2])


def _crop_to_image(corners: np.ndarray, half: np.ndarray, factor: float, centre_xy: np.ndarray) -> np.ndarray:
    """Crop pixel coordinates -> image coordinates (crop centre maps to the segmentation centre),
    with the original's order of operations."""
    mean = np.mean(corners, axis=0)
    displacement = mean - half
    return (corners - mean + displacement) / factor + centre_xy
