"""The legacy EAO's Matlab-toolkit definitions: trax's rasteriser, ``is_deterministic``, the zero curve start.

Hand-computed cases first. Then a second implementation written here from the sources (a pure-Python
scan-line transliteration of trax's ``compute_polygon_overlap``/``rasterize_polygon`` and a loop-by-loop
reading of ``estimate_expected_overlap.m``/``is_deterministic.m``, see /work/notes/legacy_eao_facts.md), compared
with the package on random pairs and on random workspaces written with vot-toolkit's own writers.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from d3s_vot.integrations.vot.legacy_eao import Run, expected_overlap_curve, is_deterministic, legacy_eao, \
    workspace_legacy_eao
from d3s_vot.integrations.vot.legacy_overlap import OVERLAP_DEFINITIONS, region_overlaps, trax_overlaps, trax_polygon
from d3s_vot.synthetic.scene import SceneConfig
from d3s_vot.synthetic.vot import write_vot

vot_region = pytest.importorskip("vot.region")
from vot.region import Polygon, Rectangle, Special  # noqa: E402
from vot.region.io import write_trajectory, write_trajectory_binary  # noqa: E402

F = np.float32
IMAGE = (100, 100)


def square(x0, y0, x1, y1):
    return Polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])


def overlap(a, b, definition="matlab", image=IMAGE):
    return float(region_overlaps([a], [b], image, OVERLAP_DEFINITIONS[definition])[0])


# --- hand-computed rasterisation cases ----------------------------------------------------------------


def test_rectangles_become_corner_polygons():
    a, b = Rectangle(0, 0, 10, 10), Rectangle(5, 0, 10, 10)
    # matlab: columns 0..9 and 5..14 filled inclusively, 10 rows -> 50 / 150
    assert overlap(a, b) == pytest.approx(1 / 3, abs=1e-7)
    # matlab-2018: corners x..x+w -> 11 x 11 pixels each, 6 shared columns -> 66 / 176
    assert overlap(a, b, "matlab-2018") == pytest.approx(66 / 176, abs=1e-7)
    # legacy: rows 1..9 (y > 0), columns 0..8 and 5..13 (exclusive ends) -> 36 / 126
    assert overlap(a, b, "matlab-legacy-raster") == pytest.approx(36 / 126, abs=1e-7)
    assert overlap(a, b, "toolkit") == pytest.approx(1 / 3, abs=1e-7)
    assert trax_polygon(Rectangle(1, 2, 3, 4)).tolist() == [[1, 2], [3, 2], [3, 5], [1, 5]]
    assert trax_polygon(Rectangle(1, 2, 3, 4), rectangle_end=0).tolist() == [[1, 2], [4, 2], [4, 6], [1, 6]]


def test_rotated_polygon_apex_rows_stay_empty():
    diamond = Polygon([(5, 0), (10, 5), (5, 10), (0, 5)])
    box = Rectangle(0, 0, 11, 11)  # pixels 0..10
    # rows 1..9 hold 3,5,7,9,11,9,7,5,3 pixels; the apex rows 0 and 10 get two equal nodes, which trax skips
    assert overlap(diamond, box) == pytest.approx(59 / 121, abs=1e-7)
    # vot-toolkit's newer port fills the apex pixel of rows 0 and 10
    assert overlap(diamond, box, "toolkit") == pytest.approx(61 / 121, abs=1e-7)


def test_sub_pixel_vertices():
    # a 0.9 px shift: rounding moves the square by one pixel (16 of 34 pixels shared) ...
    assert overlap(square(0, 0, 4, 4), square(0.9, 0.9, 4.9, 4.9)) == pytest.approx(16 / 34, abs=1e-7)
    # ... the legacy grid starts at x = y = 0 and truncates 0.9 -> 0 and 4.9 -> 4: the same 16 pixels
    assert overlap(square(0, 0, 4, 4), square(0.9, 0.9, 4.9, 4.9), "matlab-legacy-raster") == 1.0
    # trax rounds 0.5 -> 1 and 2.5 -> 3 (half away from zero), the toolkit 0.5 -> 0, 2.5 -> 2 (half to even)
    assert overlap(square(0.5, 0.5, 2.5, 2.5), square(1, 1, 3, 3)) == 1.0
    assert overlap(square(0.5, 0.5, 2.5, 2.5), square(1, 1, 3, 3), "toolkit") == pytest.approx(4 / 14, abs=1e-7)


def test_polygons_partly_outside_the_image():
    # clipped to the image, (-5,-5)-(4,4) covers the same 5x5 pixels as (0,0)-(4,4)
    assert overlap(square(-5, -5, 4, 4), square(0, 0, 4, 4)) == 1.0
    # legacy: rows 0..4 and columns 0..3 (20 px) against rows 1..4, columns 0..3 (16 px)
    assert overlap(square(-5, -5, 4, 4), square(0, 0, 4, 4), "matlab-legacy-raster") == pytest.approx(0.8, abs=1e-7)
    # 20x20 image, window x = 15, width 5: a span ending past the width by more than 1 loses the last column
    # in legacy mode (end clamped to width - 1, exclusive), one ending exactly at the width does not
    image = (20, 20)
    assert overlap(square(15, 15, 25, 25), square(15, 15, 20, 20), "matlab-legacy-raster", image) == \
        pytest.approx(16 / 20, abs=1e-7)
    assert overlap(square(15, 15, 25, 25), square(15, 15, 20, 20), "matlab", image) == 1.0
    # entirely outside the image: no pixels, overlap 0 (trax's box checks)
    assert overlap(square(200, 200, 210, 210), square(0, 0, 4, 4)) == 0.0


def test_special_codes_and_triangles_have_no_overlap():
    values = region_overlaps([Special(1), Polygon([(0, 0), (5, 0), (0, 5)]), square(0, 0, 4, 4)],
                             [square(0, 0, 4, 4)] * 3, IMAGE, OVERLAP_DEFINITIONS["matlab"])
    assert np.isnan(values[:2]).all() and values[2] == 1.0


# --- is_deterministic ---------------------------------------------------------------------------------


def _trajectory(shift: float, base: float = 10.25, specials=(0,)):
    return [Special(1) if t in specials else square(base + t + shift, 20.25, base + t + 6 + shift, 26.25)
            for t in range(6)]


def test_is_deterministic_rule():
    same = _trajectory(0)
    assert is_deterministic([same, list(same), list(same)], IMAGE)
    # 0.0015 px apart but never across a rounding boundary: the pixels are the same, overlap 1 > 0.999
    assert is_deterministic([same, _trajectory(0.0015), _trajectory(-0.0015)], IMAGE)
    # stochastic: one pixel apart
    assert not is_deterministic([same, same, _trajectory(1.0)], IMAGE)
    # 0.001 px apart across x.5: trax rounds the square one pixel further -> 42/56 < 0.999
    assert not is_deterministic([_trajectory(0, base=10.4995), _trajectory(0.001, base=10.4995),
                                 _trajectory(0, base=10.4995)], IMAGE)
    # special codes on other frames, a missing run 3
    assert not is_deterministic([same, same, _trajectory(0, specials=(0, 3))], IMAGE)
    assert not is_deterministic([same, same, None], IMAGE)
    assert not is_deterministic([same, same], IMAGE)


# --- the curve starts from zeros ----------------------------------------------------------------------


def test_curve_starts_from_zeros():
    nan = float("nan")
    runs = [Run("a", np.array([nan, .5, .5, .5]), ()), Run("b", np.array([nan, 1, 1, 1.]), ())]
    curve = expected_overlap_curve(runs, 6)
    assert curve.tolist() == [1, .75, .75, .75, 0, 0]  # lengths 5, 6: no fragment reaches them -> 0, not NaN
    assert legacy_eao(runs, 6, 2, 6).score == pytest.approx((.75 * 3) / 5)


# --- a second implementation, transliterated from trax and the Matlab files ----------------------------


def ref_round(v):
    return F(math.floor(v + 0.5)) if v >= 0 else F(math.ceil(v - 0.5))


def ref_div(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(a) / np.float64(b))


def ref_rasterize(xs, ys, width, height, legacy):
    """trax rasterize_polygon, loop for loop: the set of (row, column) pixels."""
    if not legacy:
        xs, ys = [ref_round(v) for v in xs], [ref_round(v) for v in ys]
    pixels = set()
    count = len(xs)
    for row in range(height):
        nodes = []
        j = count - 1
        for i in range(count):
            if legacy:
                if (ys[i] < row <= ys[j]) or (ys[j] < row <= ys[i]):
                    nodes.append(int(xs[i] + (F(row) - ys[i]) / (ys[j] - ys[i]) * (xs[j] - xs[i])))
            else:
                yi, yj = int(ys[i]), int(ys[j])
                if (yi <= row < yj) or (yj <= row < yi) or (yi < row <= yj) or (yj < row <= yi) or (yi == yj == row):
                    r, k = float(ys[j] - ys[i]), float(xs[j] - xs[i])
                    if r != 0:
                        nodes.append(int(float(xs[i]) + float(F(row) - ys[i]) / r * k))
            j = i
        nodes.sort()
        i = 0
        if legacy:
            while i < len(nodes):
                if nodes[i] >= width:
                    break
                if nodes[i + 1] > 0:
                    start, end = max(nodes[i], 0), (width - 1 if nodes[i + 1] > width else nodes[i + 1])
                    pixels.update((row, c) for c in range(start, end))
                i += 2
        else:
            while i < len(nodes) - 1:
                if nodes[i] == nodes[i + 1]:
                    i += 1
                    continue
                if nodes[i] >= width:
                    break
                if nodes[i + 1] >= 0:
                    pixels.update((row, c) for c in range(max(nodes[i], 0), min(nodes[i + 1], width - 1) + 1))
                i += 2
    return pixels


def ref_overlap(p1, p2, image, legacy):
    """trax compute_polygon_overlap with bounds [0, w-1] x [0, h-1]; polygons as lists of float32 (x, y)."""
    def box(p):
        left, top = min(x for x, _ in p), min(y for _, y in p)
        right, bottom = max(x for x, _ in p), max(y for _, y in p)
        if not legacy:
            left, top, right, bottom = F(math.floor(left)), F(math.floor(top)), F(math.ceil(right)), F(math.ceil(bottom))
        return max(left, F(0)), max(top, F(0)), min(right, F(image[0] - 1)), min(bottom, F(image[1] - 1))

    (l1, t1, r1, b1), (l2, t2, r2, b2) = box(p1), box(p2)
    x, y = min(l1, l2), min(t1, t2)
    width, height = int(max(r1, r2) - x) + 1, int(max(b1, b2) - y) + 1
    a1, a2 = float((r1 - l1) * (b1 - t1)), float((r2 - l2) * (b2 - t2))
    if ref_div(a1, a2) < 1e-10 or ref_div(a2, a1) < 1e-10 or width < 1 or height < 1:
        return 0.0
    inter = (min(r1, r2) - max(l1, l2)) * (min(b1, b2) - max(t1, t2))
    with np.errstate(divide="ignore", invalid="ignore"):
        box_iou = inter / ((r1 - l1) * (b1 - t1) + (r2 - l2) * (b2 - t2) - inter)
    if (F(0) if F(0) > box_iou else box_iou) == 0:
        return 0.0
    m1 = ref_rasterize([px - x for px, _ in p1], [py - y for _, py in p1], width, height, legacy)
    m2 = ref_rasterize([px - x for px, _ in p2], [py - y for _, py in p2], width, height, legacy)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(F(len(m1 & m2)) / F(len(m1 | m2)))


def ref_polygon(region, rectangle_end):
    if isinstance(region, Rectangle):
        x, y, w, h = (float(F(v)) for v in (region.x, region.y, region.width, region.height))
        return [(F(x), F(y)), (F(x + w - rectangle_end), F(y)), (F(x + w - rectangle_end), F(y + h - rectangle_end)),
                (F(x), F(y + h - rectangle_end))]
    if isinstance(region, Polygon) and region.size >= 4:
        return [(F(px), F(py)) for px, py in region.points()]
    return None


def ref_frames(trajectory, groundtruth, image, definition):
    d = OVERLAP_DEFINITIONS[definition]
    out = []
    for a, b in zip(trajectory, groundtruth):
        pa, pb = ref_polygon(a, d.rectangle_end), ref_polygon(b, d.rectangle_end)
        out.append(float("nan") if pa is None or pb is None else ref_overlap(pa, pb, image, d.legacy_raster))
    return out


def ref_is_deterministic(trajectories, image, definition):
    if len(trajectories) < 3:
        return False
    base = trajectories[0]
    valid = [not isinstance(r, Special) for r in base]
    for trial in trajectories[1:3]:
        if len(trial) != len(base) or [not isinstance(r, Special) for r in trial] != valid:
            return False
        keep = [i for i in range(len(base)) if valid[i]]
        values = ref_frames([base[i] for i in keep], [trial[i] for i in keep], image, definition)
        if not all(v > 0.999 for v in values):
            return False
    return True


def ref_eao(sequences, low, high, skip=5):
    """estimate_expected_overlap.m + analyze_average_expected_overlap.m; ``sequences``: per sequence a list of
    runs ``(frames, failures)`` and the sequence length."""
    length = max(n for _, n in sequences)
    rows, weights = [], []
    for runs, _ in sequences:
        for frames, failures in runs:
            n = len(frames)
            if failures:
                points = [1] + [f + skip for f in failures if f + skip <= n]
                for a, b in zip(points[:-1], points[1:]):
                    row = [0.0] * length
                    for t in range(a, b + 1):
                        row[t - a] = 0.0 if math.isnan(frames[t - 1]) else frames[t - 1]
                    rows.append(row)
                    weights.append(1 / len(runs))
                row = [float("nan")] * length
                for t in range(points[-1], n + 1):
                    row[t - points[-1]] = 0.0 if math.isnan(frames[t - 1]) else frames[t - 1]
            else:
                row = [float("nan")] * length
                row[:n] = frames[:length]
            rows.append(row)
            weights.append(1 / len(runs))
    curve = [0.0] * length
    for n in range(1, length + 1):
        if n == 1:
            curve[0] = 1.0
            continue
        usable = [i for i, row in enumerate(rows) if not math.isnan(row[n - 1])]
        if usable:
            curve[n - 1] = (sum(sum(rows[i][1:n]) / (n - 1) * weights[i] for i in usable)
                            / sum(weights[i] for i in usable))
    picked = [curve[n - 1] for n in range(low, min(high, length) + 1) if not math.isnan(curve[n - 1])]
    return (sum(picked) / len(picked) if picked else float("nan")), curve


# --- random pairs ---------------------------------------------------------------------------------------


def _random_polygon(rng, image, rectangle_prob=0.3):
    cx, cy = rng.uniform(-10, image[0] + 10), rng.uniform(-10, image[1] + 10)
    if rng.random() < rectangle_prob:
        return Rectangle(cx, cy, rng.uniform(0.5, 25), rng.uniform(0.5, 25))
    angle, w, h = rng.uniform(0, np.pi), rng.uniform(1, 25), rng.uniform(1, 25)
    c, s = np.cos(angle), np.sin(angle)
    corners = [(cx + c * dx - s * dy, cy + s * dx + c * dy) for dx, dy in ((-w, -h), (w, -h), (w, h), (-w, h))]
    if rng.random() < 0.2:  # integer and half-integer vertices: rounding ties, horizontal edges
        corners = [(round(px * 2) / 2, round(py * 2) / 2) for px, py in corners]
    return Polygon(corners)


@pytest.mark.parametrize("definition", ["matlab", "matlab-2018", "matlab-legacy-raster"])
def test_random_pairs_match_the_scan_line_reference(definition):
    rng = np.random.default_rng(7)
    image = (64, 48)
    first, second = [], []
    for _ in range(400):
        a = _random_polygon(rng, image)
        if rng.random() < 0.7:  # mostly overlapping pairs
            points = np.asarray(trax_polygon(a)) + rng.normal(0, 2, size=(4, 2))
            b = Polygon([tuple(p) for p in points])
        else:
            b = _random_polygon(rng, image)
        first.append(a)
        second.append(b)
    got = region_overlaps(first, second, image, OVERLAP_DEFINITIONS[definition])
    want = ref_frames(first, second, image, definition)
    assert np.array_equal(got, np.asarray(want), equal_nan=True)
    assert (got > 0).sum() > 200  # the comparison is about real overlaps, not a pile of zeros


def test_trax_overlaps_batches_mixed_vertex_counts():
    hexagon = Polygon([(10, 5), (20, 5), (25, 12), (20, 20), (10, 20), (5, 12)])
    pairs = [(hexagon, square(8, 8, 22, 18)), (square(8, 8, 22, 18), hexagon)]
    got = trax_overlaps([trax_polygon(a) for a, _ in pairs], [trax_polygon(b) for _, b in pairs], IMAGE)
    want = [ref_overlap(ref_polygon(a, 1), ref_polygon(b, 1), IMAGE, False) for a, b in pairs]
    assert got.tolist() == want and 0 < want[0] < 1


# --- random workspaces ----------------------------------------------------------------------------------

LENGTHS = (23, 30, 27)


def _supervised(rng, groundtruth, noise, failures, output="polygon"):
    """A trajectory in the toolkit's supervised protocol: init 1, failure 2, 4 skipped 0, re-init 1."""
    out, t, n = [Special(1)], 1, len(groundtruth)
    while t < n:
        if t in failures:
            skipped = min(4, n - t - 1)
            out += [Special(2)] + [Special(0)] * skipped + ([Special(1)] if t + skipped + 1 < n else [])
            t = len(out)
            continue
        points = np.asarray(ref_polygon(groundtruth[t], 1), dtype=np.float64) + rng.normal(0, noise, size=(4, 2))
        if output == "rectangle":
            lo, hi = points.min(axis=0), points.max(axis=0)
            out.append(Rectangle(lo[0], lo[1], hi[0] - lo[0] + 1, hi[1] - lo[1] + 1))
        else:
            out.append(Polygon([tuple(p) for p in points]))
        t = len(out)
    return out


def _make_random_workspace(tmp_path, seed=11):
    rng = np.random.default_rng(seed)
    ws = tmp_path / "ws"
    (ws / "sequences").mkdir(parents=True)
    groundtruths = {}
    for s, n in enumerate(LENGTHS):
        name = f"synthetic-{s:03d}"
        write_vot(tmp_path / f"src{s}", num_sequences=1, num_frames=n, seed=seed + s, config=SceneConfig(width=64, height=48))
        seq_dir = ws / "sequences" / name
        (tmp_path / f"src{s}" / "synthetic-000").rename(seq_dir)
        (seq_dir / "sequence").write_text((seq_dir / "sequence").read_text().replace("name=synthetic-000", f"name={name}"))
        gt = []
        for t in range(n):  # a target drifting out over the right/bottom border, rectangles in sequence 1
            cx, cy = 20 + 1.7 * t + rng.normal(0, 0.3), 15 + 1.1 * t + rng.normal(0, 0.3)
            if s == 1:
                gt.append(Rectangle(cx - 8.3, cy - 6.1, 16.6, 12.2))
            else:
                a, w, h = 0.3 * s + 0.05 * t, 9.3, 6.7
                c, si = np.cos(a), np.sin(a)
                gt.append(Polygon([(cx + c * dx - si * dy, cy + si * dx + c * dy)
                                   for dx, dy in ((-w, -h), (w, -h), (w, h), (-w, h))]))
        write_trajectory(str(seq_dir / "groundtruth.txt"), gt)
        groundtruths[name] = gt
    (ws / "sequences" / "list.txt").write_text("".join(f"synthetic-{s:03d}\n" for s in range(len(LENGTHS))))

    trackers = {}
    for s, n in enumerate(LENGTHS):
        name = f"synthetic-{s:03d}"
        gt = groundtruths[name]
        # forced failures near the end: f + 5 == n (re-init on the last frame) and f + 5 > n (none)
        stochastic = [_supervised(rng, gt, 1.5, {5, n - 6} if r % 3 == 0 else ({n - 2} if r % 3 == 1 else set()),
                                  output="rectangle" if r % 4 == 0 else "polygon") for r in range(15)]
        base = _supervised(rng, gt, 0.8, {8})
        deterministic = [base] * 3
        near = [[Polygon([(px + rng.uniform(-0.001, 0.001), py + rng.uniform(-0.001, 0.001))
                          for px, py in r.points()]) if isinstance(r, Polygon) else r for r in base]
                for _ in range(15)]
        trackers.setdefault("stochastic", {})[name] = stochastic
        trackers.setdefault("deterministic", {})[name] = deterministic
        trackers.setdefault("near", {})[name] = near
    for tracker, per_sequence in trackers.items():
        for name, runs in per_sequence.items():
            out = ws / "results" / tracker / "baseline" / name
            out.mkdir(parents=True)
            for rep, trajectory in enumerate(runs, start=1):
                if rep % 2:
                    write_trajectory(str(out / f"{name}_{rep:03d}.txt"), trajectory)
                else:
                    with open(out / f"{name}_{rep:03d}.bin", "wb") as handle:
                        write_trajectory_binary(handle, trajectory)
    return ws, groundtruths, trackers


@pytest.fixture(scope="module")
def random_workspace(tmp_path_factory):
    return _make_random_workspace(tmp_path_factory.mktemp("legacy"))


def _reference_workspace_eao(ws, tracker, groundtruths, definition, low, high):
    from vot.region.io import read_trajectory  # the same parsing the toolkit does: float32 coordinates

    sequences = []
    image = (64, 48)
    for name, gt in groundtruths.items():
        folder = ws / "results" / tracker / "baseline" / name
        runs = [read_trajectory(str(path)) for path in sorted(folder.glob(f"{name}_*.*"))]
        if ref_is_deterministic(runs, image, definition):
            runs = runs[:3]
        counted = []
        for trajectory in runs:
            frames = ref_frames(trajectory, gt, image, definition)
            failures = [i + 1 for i, r in enumerate(trajectory) if isinstance(r, Special) and r.code == 2]
            counted.append((frames, failures))
        sequences.append((counted, len(gt)))
    return ref_eao(sequences, low, high), [len(c) for c, _ in sequences]


@pytest.mark.parametrize("tracker,definition,expected_runs", [
    ("stochastic", "matlab", [15, 15, 15]),
    ("deterministic", "matlab", [3, 3, 3]),
    ("near", "matlab", [3, 3, 3]),
    ("stochastic", "matlab-legacy-raster", [15, 15, 15]),
    ("near", "matlab-2018", [3, 3, 3]),
])
def test_random_workspace_matches_the_reference(random_workspace, tracker, definition, expected_runs):
    ws, groundtruths, _ = random_workspace
    low, high = 5, 35  # past the longest sequence (30): the clipped interval of the legacy toolkit
    (want_score, want_curve), want_runs = _reference_workspace_eao(ws, tracker, groundtruths, definition, low, high)
    got = workspace_legacy_eao(ws, tracker, low=low, high=high, overlap=definition)
    if expected_runs is not None:
        assert want_runs == expected_runs
    if tracker == "near":  # < 0.002 px apart: mostly counted as deterministic, as the Matlab toolkit would
        assert want_runs.count(3) >= 1
    assert got.runs == sum(want_runs)
    assert np.allclose(got.curve, want_curve, atol=1e-6, rtol=0)
    assert got.score == pytest.approx(want_score, abs=1e-6)
    assert got.overlap == definition


def test_cli_reports_its_definitions(random_workspace):
    import json

    ws = random_workspace[0]
    run = lambda *a: subprocess.run([sys.executable, "-m", "d3s_vot.legacy_eao", *a], capture_output=True, text=True)
    shown = run(str(ws), "deterministic", "--low", "5", "--high", "30", "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["definitions"]["overlap"] == "matlab" and data["definitions"]["curve_start"] == "zeros"
    assert data["runs"] == 9
    toolkit = json.loads(run(str(ws), "deterministic", "--low", "5", "--high", "30", "--json",
                             "--overlap", "toolkit").stdout)
    assert toolkit["definitions"]["overlap"] == "toolkit" and toolkit["eao"] != data["eao"]
    bad = run(str(ws), "deterministic", "--overlap", "nope")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
