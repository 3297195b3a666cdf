"""Procedural tracking scenes with exact ground truth, for offline tests and demos.

A scene is a textured, deforming blob (the target) that moves, rotates and scales over a textured
background that pans (camera motion). An occluder crosses the target for a few frames, a look-alike
distractor appears for a while, the illumination changes and the target may partly leave the view.
Everything is drawn from one ``numpy.random.Generator`` seeded by ``seed``, so a sequence is
reproducible bit for bit.

Coordinates are 0-based and continuous: pixel ``(row i, col j)`` covers ``[j, j+1) x [i, i+1)`` and is
rendered at its centre ``(j + 0.5, i + 0.5)``. Hence the axis-aligned box of a mask is
``[min col, min row, max col - min col + 1, max row - min row + 1]`` and the polygon (the rotated
rectangle around the whole, unoccluded target) lives in the same frame as the mask.

Per-frame tags (0/1, the five VOT attributes):

* ``occlusion``: the occluder hides at least 10 % of the target.
* ``size_change``: the target area differs by more than 15 % from its area 5 frames earlier.
* ``camera_motion``: the background pans by more than 0.5 px/frame.
* ``motion_change``: within 2 frames after an abrupt change of the target velocity.
* ``illum_change``: the global gain differs by more than 0.05 from its value 5 frames earlier.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

TAG_NAMES = ("camera_motion", "illum_change", "motion_change", "occlusion", "size_change")

_BOUNDARY_SAMPLES = 256
_DEFORM_LOBES = 3


@dataclass(frozen=True)
class SceneConfig:
    """What a generated scene contains; defaults give a moderately hard sequence."""

    width: int = 320
    height: int = 240
    target_size: tuple[float, float] = (0.10, 0.17)  # semi-major axis, as a fraction of min(width, height)
    aspect: tuple[float, float] = (0.5, 0.85)  # semi-minor / semi-major axis
    speed: tuple[float, float] = (0.8, 2.5)  # target speed in px/frame
    rotation_speed: float = 0.03  # max rad/frame
    deformation: float = 0.08  # amplitude of the boundary wobble (fraction of the radius)
    occlusion: bool = True
    distractor: bool = True
    camera_motion: bool = True
    illumination_change: bool = True
    scale_change: bool = True
    motion_changes: int = 2  # abrupt velocity changes per sequence
    leave_view: bool = True  # allow the target centre close to the border (target partly outside)
    noise: float = 3.0  # std of per-frame pixel noise (0-255 scale)

    def __post_init__(self) -> None:
        if self.width < 32 or self.height < 32:
            raise ValueError(f"scene must be at least 32x32 pixels, got {self.width}x{self.height}")


@dataclass
class SyntheticSequence:
    """Frames and exact ground truth of one generated sequence (see module docstring for conventions)."""

    frames: list[np.ndarray]
    polygons: np.ndarray  # (T, 8) rotated rectangle corners x1,y1,...,x4,y4
    boxes: np.ndarray  # (T, 4) axis-aligned box of the visible mask, NaN row when invisible
    masks: list[np.ndarray]  # HxW uint8 0/1 visible target
    visible_ratio: np.ndarray  # (T,) visible fraction of the whole target
    tags: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)


@dataclass(frozen=True)
class _Blob:
    """Pose and look of a deforming textured ellipse in one frame."""

    cx: float
    cy: float
    a: float  # semi-axis along the blob's own u axis
    b: float
    angle: float  # rad, rotation of u against the image x axis
    deform: float  # current boundary wobble amplitude
    deform_phase: float


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int, channels: int = 3) -> np.ndarray:
    small = rng.random((max(2, height // cell + 2), max(2, width // cell + 2), channels)).astype(np.float32)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC).reshape(height, width, channels)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Multi-octave colour noise with a few soft stripes: enough texture for camera motion to show."""
    img = np.zeros((height, width, 3), np.float32)
    for cell, weight in ((64, 0.5), (16, 0.3), (4, 0.2)):
        img += weight * _smooth_noise(rng, height, width, cell)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    freq, direction = rng.uniform(0.02, 0.06), rng.uniform(0, np.pi)
    stripes = 0.5 + 0.5 * np.sin(freq * (np.cos(direction) * xx + np.sin(direction) * yy))
    img = 0.75 * img + 0.25 * stripes[..., None] * rng.uniform(0.3, 1.0, 3).astype(np.float32)
    tint = rng.uniform(0.4, 0.9, 3).astype(np.float32)
    return np.clip(img * tint * 255.0, 0, 255)


def _boundary_uv(blob: _Blob) -> tuple[np.ndarray, np.ndarray]:
    phi = np.linspace(0.0, 2 * np.pi, _BOUNDARY_SAMPLES, endpoint=False)
    r = 1.0 + blob.deform * np.sin(_DEFORM_LOBES * phi + blob.deform_phase)
    return blob.a * r * np.cos(phi), blob.b * r * np.sin(phi)


def _rotated_rectangle(blob: _Blob) -> np.ndarray:
    """Corners (4, 2) of the tightest rectangle around the blob aligned with the blob's own axes."""
    u, v = _boundary_uv(blob)
    us = np.array([u.min(), u.max(), u.max(), u.min()])
    vs = np.array([v.min(), v.min(), v.max(), v.max()])
    c, s = np.cos(blob.angle), np.sin(blob.angle)
    return np.stack([blob.cx + c * us - s * vs, blob.cy + s * us + c * vs], axis=1)


def _blob_raster(blob: _Blob) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
    """Inside-mask of the blob on its own (unclipped) integer grid plus normalised texture coordinates.

    Returns ``x0, y0, inside, p, q`` where ``inside[i, j]`` is pixel ``(y0 + i, x0 + j)``.
    """
    corners = _rotated_rectangle(blob)
    x0, y0 = int(np.floor(corners[:, 0].min())) - 1, int(np.floor(corners[:, 1].min())) - 1
    x1, y1 = int(np.ceil(corners[:, 0].max())) + 1, int(np.ceil(corners[:, 1].max())) + 1
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    dx, dy = xx + 0.5 - blob.cx, yy + 0.5 - blob.cy
    c, s = np.cos(blob.angle), np.sin(blob.angle)
    p = (c * dx + s * dy) / blob.a
    q = (-s * dx + c * dy) / blob.b
    rho = np.hypot(p, q)
    limit = 1.0 + blob.deform * np.sin(_DEFORM_LOBES * np.arctan2(q, p) + blob.deform_phase)
    return x0, y0, rho <= limit, p, q


def _blob_texture(p: np.ndarray, q: np.ndarray, colors: np.ndarray, phase: float) -> np.ndarray:
    """Two-colour pattern fixed to the blob (it rotates and scales with it) with a darker rim."""
    m = 0.5 + 0.5 * np.sin(5.0 * p + phase) * np.cos(5.0 * q - phase)
    rim = np.clip(1.3 - 0.45 * np.hypot(p, q), 0.5, 1.0)
    tex = colors[0] * (1 - m[..., None]) + colors[1] * m[..., None]
    return tex * rim[..., None]


def _paste(canvas: np.ndarray, x0: int, y0: int, inside: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Draw ``pixels`` where ``inside`` onto ``canvas`` (clipped); return the drawn full-frame mask."""
    h, w = canvas.shape[:2]
    ih, iw = inside.shape
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + iw, w), min(y0 + ih, h)
    drawn = np.zeros((h, w), bool)
    if cx0 >= cx1 or cy0 >= cy1:
        return drawn
    sub_inside = inside[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    region = canvas[cy0:cy1, cx0:cx1]
    region[sub_inside] = pixels[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0][sub_inside]
    drawn[cy0:cy1, cx0:cx1] = sub_inside
    return drawn


def _smooth_events(num_frames: int, events: list[tuple[int, int, float]]) -> np.ndarray:
    """Cumulative sum of linear ramps: each (start, length, total) adds ``total`` spread over ``length`` frames."""
    out = np.zeros(num_frames)
    t = np.arange(num_frames)
    for start, length, total in events:
        out += total * np.clip((t - start) / max(length, 1), 0.0, 1.0)
    return out


def _event_start(rng: np.random.Generator, num_frames: int, length: int) -> int:
    return int(rng.integers(1, max(2, num_frames - length)))


def _target_path(rng: np.random.Generator, cfg: SceneConfig, num_frames: int, radius: float):
    """Centre trajectory bouncing inside the (possibly extended) frame, with abrupt velocity changes."""
    margin = 0.15 * radius if cfg.leave_view else 1.2 * radius
    lo = np.array([margin, margin])
    hi = np.array([cfg.width - margin, cfg.height - margin])
    pos = rng.uniform(lo + 0.3 * (hi - lo), hi - 0.3 * (hi - lo))
    direction = rng.uniform(0, 2 * np.pi)
    vel = rng.uniform(*cfg.speed) * np.array([np.cos(direction), np.sin(direction)])
    change_frames = set()
    if num_frames > 6 and cfg.motion_changes > 0:
        picks = rng.choice(np.arange(3, num_frames - 1), size=min(cfg.motion_changes, num_frames - 4), replace=False)
        change_frames = {int(f) for f in picks}
    positions = np.empty((num_frames, 2))
    motion_change = np.zeros(num_frames, np.int64)
    for t in range(num_frames):
        if t in change_frames:
            direction = np.arctan2(vel[1], vel[0]) + rng.choice([-1, 1]) * rng.uniform(np.pi / 2, np.pi)
            vel = rng.uniform(*cfg.speed) * np.array([np.cos(direction), np.sin(direction)])
            motion_change[t : t + 3] = 1
        vel = vel + rng.normal(0, 0.05, 2)
        pos = pos + vel
        for k in range(2):
            if pos[k] < lo[k] or pos[k] > hi[k]:
                pos[k] = np.clip(pos[k], lo[k], hi[k])
                vel[k] = -vel[k]
        positions[t] = pos
    return positions, motion_change


def generate_sequence(seed: int = 0, num_frames: int = 50, config: SceneConfig | None = None) -> SyntheticSequence:
    """Render ``num_frames`` frames of a new scene; the same ``seed`` and ``config`` give identical output."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    cfg = config or SceneConfig()
    rng = np.random.default_rng(seed)
    width, height, T = cfg.width, cfg.height, num_frames

    # Target shape and look.
    a0 = rng.uniform(*cfg.target_size) * min(width, height)
    b0 = a0 * rng.uniform(*cfg.aspect)
    colors = rng.uniform(30, 255, (2, 3))
    colors[1] = 255 - colors[0] * rng.uniform(0.3, 0.8)
    tex_phase = rng.uniform(0, 2 * np.pi)

    # Scale: log-linear ramps.
    scale_events = []
    if cfg.scale_change and T > 4:
        for _ in range(2):
            length = int(rng.integers(6, 16))
            scale_events.append((_event_start(rng, T, length), length, rng.choice([-1, 1]) * rng.uniform(0.25, 0.45)))
    log_scale = np.clip(_smooth_events(T, scale_events), np.log(0.55), np.log(1.6))
    scale = np.exp(log_scale)
    angle0, omega = rng.uniform(0, np.pi), rng.uniform(-cfg.rotation_speed, cfg.rotation_speed)
    angles = angle0 + omega * np.arange(T) + 0.15 * np.sin(np.arange(T) / rng.uniform(6, 12))
    deform = cfg.deformation * (0.5 + 0.5 * np.sin(np.arange(T) / rng.uniform(4, 9)))
    deform_phase = rng.uniform(0, 2 * np.pi) + np.arange(T) * rng.uniform(0.05, 0.15)
    centres, motion_change = _target_path(rng, cfg, T, a0 * scale.max())
    blobs = [
        _Blob(centres[t, 0], centres[t, 1], a0 * scale[t], b0 * scale[t], angles[t], deform[t], deform_phase[t])
        for t in range(T)
    ]

    # Camera: the background is a larger canvas panned smoothly during one window of the sequence.
    cam_velocity = np.zeros((T, 2))
    if cfg.camera_motion and T > 4:
        length = int(rng.integers(max(3, T // 4), max(4, T // 2 + 1)))
        start = _event_start(rng, T, length)
        direction = rng.uniform(0, 2 * np.pi)
        cam_velocity[start : start + length] = rng.uniform(1.0, 3.0) * np.array([np.cos(direction), np.sin(direction)])
    cam_offset = np.cumsum(cam_velocity, axis=0)
    cam_offset -= cam_offset.min(axis=0)
    pan = np.ceil(cam_offset.max(axis=0)).astype(int) + 2
    background = _background(rng, height + pan[1], width + pan[0])

    # Occluder: a textured bar sweeping across the target during one window.
    occl_window = (0, 0)
    if cfg.occlusion and T >= 8:
        length = int(rng.integers(4, 9))
        occl_window = (_event_start(rng, T, length), length)
    occl_colors = rng.uniform(0, 255, (2, 3))
    occl_vertical = bool(rng.integers(0, 2))

    # Distractor: a look-alike blob next to the target during one window.
    dist_window = (0, 0)
    if cfg.distractor and T >= 6:
        length = int(rng.integers(max(3, T // 5), max(4, T // 3 + 1)))
        dist_window = (_event_start(rng, T, length), length)
    dist_colors = np.clip(colors * rng.uniform(0.85, 1.15, (2, 3)), 0, 255)
    dist_offset_dir = rng.uniform(0, 2 * np.pi)

    # Illumination: a global gain ramp.
    gain_events = []
    if cfg.illumination_change and T > 4:
        length = int(rng.integers(5, 12))
        gain_events.append((_event_start(rng, T, length), length, rng.choice([-1, 1]) * rng.uniform(0.2, 0.35)))
    gain = 1.0 + _smooth_events(T, gain_events)

    frames, masks = [], []
    polygons = np.empty((T, 8))
    boxes = np.full((T, 4), np.nan)
    visible_ratio = np.zeros(T)
    occlusion = np.zeros(T, np.int64)
    area = np.empty(T)
    for t, blob in enumerate(blobs):
        ox, oy = cam_offset[t]
        ix, iy = int(np.floor(ox)), int(np.floor(oy))
        canvas = background[iy : iy + height, ix : ix + width].copy()

        if dist_window[1] and dist_window[0] <= t < dist_window[0] + dist_window[1]:
            dist_r = 2.6 * blob.a
            dblob = _Blob(
                blob.cx + dist_r * np.cos(dist_offset_dir + 0.03 * t),
                blob.cy + dist_r * np.sin(dist_offset_dir + 0.03 * t),
                blob.a * 0.95, blob.b * 1.05, blob.angle + 0.4, blob.deform, blob.deform_phase + 1.0,
            )
            dx0, dy0, dinside, dp, dq = _blob_raster(dblob)
            _paste(canvas, dx0, dy0, dinside, _blob_texture(dp, dq, dist_colors, tex_phase + 0.7))

        x0, y0, inside, p, q = _blob_raster(blob)
        area[t] = inside.sum()
        target_mask = _paste(canvas, x0, y0, inside, _blob_texture(p, q, colors, tex_phase))

        if occl_window[1] and occl_window[0] <= t < occl_window[0] + occl_window[1]:
            progress = (t - occl_window[0] + 0.5) / occl_window[1]
            reach = 1.6 * max(blob.a, blob.b)
            along = -reach + 2 * reach * progress
            thickness = 0.7 * max(blob.a, blob.b)
            if occl_vertical:
                ox0, ox1 = blob.cx + along - thickness / 2, blob.cx + along + thickness / 2
                oy0, oy1 = blob.cy - 2.5 * reach, blob.cy + 2.5 * reach
            else:
                oy0, oy1 = blob.cy + along - thickness / 2, blob.cy + along + thickness / 2
                ox0, ox1 = blob.cx - 2.5 * reach, blob.cx + 2.5 * reach
            bx0, by0 = int(np.floor(ox0)), int(np.floor(oy0))
            bx1, by1 = int(np.ceil(ox1)), int(np.ceil(oy1))
            yy, xx = np.mgrid[by0:by1, bx0:bx1]
            stripes = ((xx + yy) // 6) % 2
            pixels = np.where(stripes[..., None] == 1, occl_colors[0], occl_colors[1])
            occluded = _paste(canvas, bx0, by0, np.ones_like(stripes, bool), pixels)
            hidden = (target_mask & occluded).sum()
            occlusion[t] = int(hidden >= 0.1 * area[t])
            target_mask &= ~occluded

        canvas = canvas * gain[t]
        if cfg.noise > 0:
            canvas += rng.normal(0, cfg.noise, canvas.shape).astype(np.float32)
        frames.append(np.clip(canvas, 0, 255).astype(np.uint8))

        polygons[t] = _rotated_rectangle(blob).reshape(-1)
        mask = target_mask.astype(np.uint8)
        masks.append(mask)
        visible_ratio[t] = mask.sum() / max(area[t], 1.0)
        if mask.any():
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            boxes[t] = [cols[0], rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1]

    lag = np.maximum(np.arange(T) - 5, 0)
    tags = {
        "camera_motion": (np.linalg.norm(cam_velocity, axis=1) > 0.5).astype(np.int64),
        "illum_change": (np.abs(gain - gain[lag]) > 0.05).astype(np.int64),
        "motion_change": motion_change,
        "occlusion": occlusion,
        "size_change": (np.abs(area / area[lag] - 1.0) > 0.15).astype(np.int64),
    }
    return SyntheticSequence(frames, polygons, boxes, masks, visible_ratio, tags)
