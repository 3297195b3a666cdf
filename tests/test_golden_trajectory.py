"""Golden trajectory: this package's own float64 tracker output on a synthetic sequence, committed.

Unlike tests/test_tracker_parity.py (which needs the original implementation's reference outputs in
../shared/parity), this test runs in every clone: it re-runs a fixed float64 tracker and compares
each frame with ``tests/data/golden_trajectory.json``, written by this package itself. A failure
means the tracker's numbers changed (not necessarily that they became wrong); a refactoring meant
to preserve behaviour must keep it green. Runtime: about 50 s on a 2-core CPU (35 s for the
golden run, 10 s for the perturbation check), so it is not marked slow.

What runs: ``random_weights(WEIGHTS_SEED)``, ``D3SParams()`` (the defaults), ``dtype=torch.float64``
on the CPU with ``THREADS`` torch threads, on ``generate_sequence(seed=SCENE_SEED,
num_frames=NUM_FRAMES, config=SceneConfig(width=WIDTH, height=HEIGHT))``: one run initialised with
the first frame's polygon (rotated / VOT mode), one with its 0-based ``[x, y, w, h]`` box. Every
tracked frame records box, polygon, position, target size, scale, score, flag, segmentation_used
and the mask's pixel count, bounding box and a hash (no full masks).

Why these seeds: with untrained weights the segmentation head mostly marks almost the whole crop
(weights seeds 0-2, 4, 10) or nothing (6, 8) as target, and the tracker rejects that output on
every frame; weights seed 5 gives sparse masks, and on scene seed 6 the tracker keeps the target
for the whole sequence as it shrinks (IoU with the ground-truth box 0.44-0.98) with the
segmentation used on every frame, while scene seeds 0, 1 and 5 lose it within a few frames. The
12 tracked frames include frame 11, the first regular filter update (conjugate gradient every
``train_skipping`` = 10 frames); the box run also has a hard negative (with its update) at frame 10.

Tolerances, and what was measured on this data (2026-12-03, torch 2.14.1, MKL, AVX-512):
boxes, polygons, positions and target sizes 1e-6 px; scale 1e-9 relative; flags,
segmentation_used and the mask statistics exact. These were bit-identical between torch threads 1
and 2, with ``MKL_CBWR=COMPATIBLE`` and with ``ATEN_CPU_CAPABILITY=avx2``: the positions carry
the integer arg-max steps of the DCF and the segmentation's integer masks, so rounding does not
reach them here (it can elsewhere: float64 tracking can be chaotic, ../shared/parity/README.md
section 5). The score (the DCF peak over its running mean) is continuous: threads 1 vs 2 moved
it by up to 2.9e-5 relative and ``MKL_CBWR=COMPATIBLE`` by up to 7.3e-5, so it is compared to
1e-3 relative (a 1e-9 check would fail on any other CPU or BLAS). Because the thread count
changes it, the test still pins ``torch.set_num_threads(THREADS)`` (restored afterwards).
Two float64 runs in one process are bit-identical. The comparison is shown not to be vacuous by
test_comparison_detects_a_perturbation: the init polygon moved by 1e-3 px moves frames 2-3 by
1e-3 px, which is reported (a learning rate changed by a factor 1 + 1e-6 is not a usable
perturbation: it changes only the frame 12-13 scores, by 3e-8 relative).

Regenerate (only after an intended behaviour change, or a toolchain change that is understood):

    D3S_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden_trajectory.py

The test then writes the file (with the commit, a ``dirty`` flag, date, versions and threads) and
passes with a note; commit the new file together with the change that explains it.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import cv2
import numpy as np
import pytest
import torch

from d3s_vot import D3SParams, D3STracker
from d3s_vot.synthetic.scene import SceneConfig, generate_sequence
from d3s_vot.weights import random_weights

GOLDEN_PATH = Path(__file__).resolve().parent / "data" / "golden_trajectory.json"
REPO_ROOT = Path(__file__).resolve().parents[1]
UPDATE_ENV = "D3S_UPDATE_GOLDEN"
REGENERATE = f"{UPDATE_ENV}=1 .venv/bin/python -m pytest tests/test_golden_trajectory.py"
FORMAT = "d3s_vot.golden_trajectory/1"

WEIGHTS_SEED = 5
SCENE_SEED = 6
WIDTH, HEIGHT = 320, 240
NUM_FRAMES = 13             # the init frame + 12 tracked frames (tracker frame numbers 2..13)
THREADS = 2                 # torch CPU threads while tracking (pinned, restored afterwards)
MODES = ("polygon", "box")

TOL_PX = 1e-6               # box, polygon, position, target_size (absolute, pixels)
TOL_REL = {"scale": 1e-9,   # relative
           "score": 1e-3}   # relative: rounding moves it by up to 7e-5 (see the module docstring)
PX_FIELDS = ("box", "polygon", "position", "target_size")
REL_FIELDS = tuple(TOL_REL)
EXACT_FIELDS = ("flag", "segmentation_used", "mask_pixels", "mask_bbox", "mask_sha256")

PERTURB_PX = 1e-3           # the perturbation test shifts the init region by this much
PERTURB_FRAMES = 2          # tracked frames in the perturbation test


# ----------------------------------------------------------------------------------------------
# Running and recording
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pinned_threads():
    """Track with THREADS torch threads; the previous setting is restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        yield THREADS
    finally:
        torch.set_num_threads(previous)


def make_sequence():
    return generate_sequence(seed=SCENE_SEED, num_frames=NUM_FRAMES, config=SceneConfig(width=WIDTH, height=HEIGHT))


def make_tracker(params: Optional[D3SParams] = None) -> D3STracker:
    return D3STracker(random_weights(WEIGHTS_SEED), params=params or D3SParams(), device="cpu", dtype=torch.float64)


def init_region(seq, mode: str) -> np.ndarray:
    """The first frame's polygon (8 numbers) or 0-based ``[x, y, w, h]`` box, as float64."""
    return np.array(seq.polygons[0] if mode == "polygon" else seq.boxes[0], dtype=np.float64)


def _floats(values) -> Any:
    if values is None:
        return None
    return np.asarray(values, dtype=np.float64).tolist()


def _mask_record(mask: np.ndarray) -> Dict[str, Any]:
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    ys, xs = np.nonzero(mask)
    bbox = None if ys.size == 0 else [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]
    return {"mask_pixels": int(ys.size), "mask_bbox": bbox,
            "mask_sha256": hashlib.sha256(mask.tobytes()).hexdigest()[:16]}


def frame_record(frame_num: int, result) -> Dict[str, Any]:
    rec = {"frame": frame_num, "box": _floats(result.box), "polygon": _floats(result.polygon),
           "position": _floats(result.position), "target_size": _floats(result.target_size),
           "scale": float(result.scale), "score": float(result.score), "flag": str(result.flag),
           "segmentation_used": bool(result.segmentation_used)}
    rec.update(_mask_record(result.mask))
    return rec


def cg_update(rec: Dict[str, Any], params: D3SParams) -> bool:
    """Whether the frame ran a filter update (conjugate gradient), as D3STracker decides it."""
    return rec["flag"] == "hard_negative" or (rec["frame"] - 1) % params.train_skipping == 0


def run_trajectory(tracker: D3STracker, seq, region, num_tracked: Optional[int] = None) -> List[Dict[str, Any]]:
    """Initialise on frame 0 with ``region``, track the following frames, one record per frame."""
    frames = seq.frames[1:] if num_tracked is None else seq.frames[1:1 + num_tracked]
    tracker.initialize(seq.frames[0], region)
    # the tracker numbers the initialisation frame 1, so the i-th tracked frame is frame i + 2
    return [frame_record(i + 2, tracker.track(frame)) for i, frame in enumerate(frames)]


# ----------------------------------------------------------------------------------------------
# Comparing
# ----------------------------------------------------------------------------------------------

def _describe(value) -> str:
    return json.dumps(value)


def compare_trajectories(reference: Sequence[Dict[str, Any]], actual: Sequence[Dict[str, Any]], mode: str,
                         tol_px: float = TOL_PX, tol_rel: Optional[Dict[str, float]] = None) -> List[str]:
    """Every difference beyond the tolerances, one line each ('<mode> frame <n> <field>: ...')."""
    tol_rel = TOL_REL if tol_rel is None else tol_rel
    problems: List[str] = []
    if len(reference) != len(actual):
        problems.append(f"{mode}: {len(actual)} tracked frames, the reference has {len(reference)}")
    for ref, got in zip(reference, actual):
        where = f"{mode} frame {ref['frame']}"
        if got["frame"] != ref["frame"]:
            problems.append(f"{where}: frame number {got['frame']}")
            continue
        for key in PX_FIELDS:
            a, b = ref[key], got[key]
            if a is None or b is None:
                if (a is None) != (b is None):
                    problems.append(f"{where} {key}: reference {_describe(a)}, got {_describe(b)}")
                continue
            a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
            if a.shape != b.shape:
                problems.append(f"{where} {key}: shape {b.shape}, reference {a.shape}")
                continue
            diff = float(np.max(np.abs(a - b))) if a.size else 0.0
            if not diff <= tol_px:      # also catches NaN
                problems.append(f"{where} {key}: max |diff| {diff:.3g} px > {tol_px:g} "
                                f"(reference {_describe(a.tolist())}, got {_describe(b.tolist())})")
        for key in REL_FIELDS:
            a, b = float(ref[key]), float(got[key])
            rel = abs(a - b) / max(abs(a), 1e-300) if a != b else 0.0
            if not rel <= tol_rel[key]:
                problems.append(f"{where} {key}: relative diff {rel:.3g} > {tol_rel[key]:g} "
                                f"(reference {a!r}, got {b!r})")
        for key in EXACT_FIELDS:
            if ref[key] != got[key]:
                problems.append(f"{where} {key}: reference {_describe(ref[key])}, got {_describe(got[key])}")
    return problems


# ----------------------------------------------------------------------------------------------
# The golden file
# ----------------------------------------------------------------------------------------------

def _git(*args: str) -> Optional[str]:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def provenance() -> Dict[str, Any]:
    commit = _git("rev-parse", "--short", "HEAD")
    # uncommitted changes, not counting the golden file itself
    status = _git("status", "--porcelain", "--untracked-files=normal", "--", ".",
                  f":(exclude){GOLDEN_PATH.relative_to(REPO_ROOT).as_posix()}")
    return {
        "commit": commit or "unknown",
        "dirty": None if status is None else bool(status),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
                     "opencv": cv2.__version__},
        "cpu": {"machine": platform.machine(), "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()},
        "torch_threads": torch.get_num_threads(),
    }


def setup_record() -> Dict[str, Any]:
    return {"weights": f"random_weights({WEIGHTS_SEED})", "weights_seed": WEIGHTS_SEED,
            "scene": f"generate_sequence(seed={SCENE_SEED}, num_frames={NUM_FRAMES}, "
                     f"config=SceneConfig(width={WIDTH}, height={HEIGHT}))",
            "scene_seed": SCENE_SEED, "num_frames": NUM_FRAMES, "width": WIDTH, "height": HEIGHT,
            "params": "D3SParams() (defaults)", "dtype": "float64", "device": "cpu", "torch_threads": THREADS,
            "frame_numbering": "tracker frame numbers: the init frame is 1, frames[i] is frame i + 1"}


def tolerance_record() -> Dict[str, Any]:
    """Information only (the test's constants are what counts)."""
    return {"px_abs": TOL_PX, "px_fields": list(PX_FIELDS), "relative": dict(TOL_REL),
            "exact_fields": list(EXACT_FIELDS)}


def dumps_golden(data: Dict[str, Any]) -> str:
    """JSON with one line per frame (readable diffs); floats keep their full repr."""
    runs = data["runs"]
    head = {k: v for k, v in data.items() if k != "runs"}
    text = json.dumps(head, indent=1)[:-2] + ',\n "runs": {\n'
    blocks = []
    for mode, run in runs.items():
        meta = {k: v for k, v in run.items() if k != "frames"}
        lines = ",\n".join("   " + json.dumps(f) for f in run["frames"])
        blocks.append(f"  {json.dumps(mode)}: {json.dumps(meta)[:-1]}, \"frames\": [\n{lines}\n  ]}}")
    return text + ",\n".join(blocks) + "\n }\n}\n"


def build_golden(runs: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    return {"format": FORMAT,
            "about": "float64 trajectory of this package (not the original D3S); written by "
                     "tests/test_golden_trajectory.py, regenerate with: " + REGENERATE,
            "produced": provenance(), "setup": setup_record(), "tolerances": tolerance_record(), "runs": runs}


def load_golden() -> Dict[str, Any]:
    return json.loads(GOLDEN_PATH.read_text())


def _run_record(seq, mode: str, frames: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {"init_region": _floats(init_region(seq, mode)),
            "cg_frames": [f["frame"] for f in frames if cg_update(f, D3SParams())],
            "segmentation_frames": [f["frame"] for f in frames if f["segmentation_used"]],
            "frames": frames}


def updating() -> bool:
    return os.environ.get(UPDATE_ENV, "") not in ("", "0")


def first_differences(problems: Sequence[str]) -> List[str]:
    """Per mode: the first frame that differs and how many frames do (differences cascade)."""
    out = []
    for mode in MODES:
        frames = sorted({int(p.split()[2].rstrip(":")) for p in problems if p.startswith(f"{mode} frame ")})
        if frames:
            out.append(f"{mode} run: first difference at frame {frames[0]} (differences in {len(frames)} "
                       f"frame{'s' if len(frames) > 1 else ''})")
    return out


def _failure_header(golden: Dict[str, Any]) -> str:
    p = golden.get("produced", {})
    v = p.get("versions", {})
    dirty = " plus uncommitted changes" if p.get("dirty") else ""
    now = {"torch": torch.__version__, "numpy": np.__version__, "opencv": cv2.__version__}
    return (f"the float64 trajectory differs from {GOLDEN_PATH.relative_to(REPO_ROOT)}, which holds the behaviour "
            f"of commit {p.get('commit')}{dirty} (written {p.get('date')}; torch {v.get('torch')}, numpy "
            f"{v.get('numpy')}, opencv {v.get('opencv')}, {p.get('torch_threads')} threads, CPU "
            f"{p.get('cpu', {}).get('torch_cpu_capability')}; this run: torch {now['torch']}, numpy {now['numpy']}, "
            f"opencv {now['opencv']}, {torch.get_num_threads()} threads, CPU "
            f"{torch.backends.cpu.get_cpu_capability()}).\nIf the change of behaviour is intended, regenerate "
            f"with\n    {REGENERATE}\nand commit the file with the change. Differences (first 25 listed):")


# ----------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sequence():
    return make_sequence()


@pytest.fixture(scope="module")
def tracker(pinned_threads):
    return make_tracker()


def test_golden_trajectory(tracker, sequence, pinned_threads, capsys):
    runs = {mode: _run_record(sequence, mode, run_trajectory(tracker, sequence, init_region(sequence, mode)))
            for mode in MODES}
    # the sequence must exercise what the test is for (a run that lost the target would not)
    for mode, run in runs.items():
        assert 11 in run["cg_frames"], f"{mode}: frame 11 ran no filter update ({run['cg_frames']})"
        assert len(run["segmentation_frames"]) >= 3, f"{mode}: segmentation used on {run['segmentation_frames']}"

    if updating():
        changes = ["(no previous file)"]
        if GOLDEN_PATH.is_file():
            old = load_golden()
            changes = [line for mode in MODES if mode in old.get("runs", {})
                       for line in compare_trajectories(old["runs"][mode]["frames"], runs[mode]["frames"], mode)]
            changes = (first_differences(changes) + changes[:5]) if changes else ["(trajectory unchanged)"]
        GOLDEN_PATH.parent.mkdir(parents=True, exist_ok=True)
        golden = build_golden(runs)
        GOLDEN_PATH.write_text(dumps_golden(golden))
        with capsys.disabled():
            print(f"\n[{UPDATE_ENV}] wrote {GOLDEN_PATH} (commit {golden['produced']['commit']}, "
                  f"dirty={golden['produced']['dirty']}); review and commit it. Against the previous file:\n  "
                  + "\n  ".join(changes))
        return

    assert GOLDEN_PATH.is_file(), f"{GOLDEN_PATH} is missing; create it with: {REGENERATE}"
    golden = load_golden()
    assert golden["setup"] == json.loads(json.dumps(setup_record())), (
        f"the golden file was made with another setup ({golden['setup']}); regenerate with: {REGENERATE}")
    problems = []
    for mode in MODES:
        problems += compare_trajectories(golden["runs"][mode]["frames"], runs[mode]["frames"], mode)
    assert not problems, "\n".join([_failure_header(golden)] + first_differences(problems) + problems[:25])


def test_comparison_detects_a_perturbation(tracker, sequence, pinned_threads):
    """The comparison is not vacuous: an init region moved by PERTURB_PX is reported."""
    if updating() or not GOLDEN_PATH.is_file():
        pytest.skip("no golden file to compare with (being regenerated)")
    reference = load_golden()["runs"]["polygon"]["frames"][:PERTURB_FRAMES]
    region = init_region(sequence, "polygon") + PERTURB_PX      # the whole polygon shifted by (1e-3, 1e-3) px
    perturbed = run_trajectory(tracker, sequence, region, num_tracked=PERTURB_FRAMES)
    problems = compare_trajectories(reference, perturbed, "polygon")
    assert any(" position: " in p for p in problems), (
        f"an init region moved by {PERTURB_PX} px went unnoticed: {problems}")
    # ... and the same comparison accepts the reference itself
    assert compare_trajectories(reference, [dict(f) for f in reference], "polygon") == []
