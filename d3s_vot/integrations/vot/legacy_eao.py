"""VOT2016/VOT2018 expected average overlap (EAO) as the legacy Matlab toolkit computed it.

``python -m d3s_vot.legacy_eao WORKSPACE TRACKER [--stack vot2018|vot2016] [--experiment baseline]
[--overlap matlab|matlab-2018|matlab-legacy-raster|toolkit]``

The Python toolkit (``vot analysis``) computes a different EAO on the same results (docs/vot.md, "EAO: two
definitions"): it stops the curve at the longest fragment and weights every fragment equally. Published
VOT2016/2018 tables (D3S: VOT2018 EAO 0.489) were made with the legacy definition, implemented here from
the legacy toolkit's sources (docs/legacy_eao.md; no Matlab or C code is used):

1. Per sequence and repetition: per-frame overlap with the ground truth, bounded by the image, computed like
   trax's C rasteriser (:mod:`.legacy_overlap`, ``--overlap``; default ``matlab``), NaN on the special frames
   (1 = init, 2 = failure, 0 = skipped). Repetitions: all result files up to 15, except that only the first 3
   count when the tracker is deterministic: runs 2 and 3 have the same frames as run 1, special codes on the
   same frames, and an overlap > 0.999 with run 1 on every other frame (``is_deterministic``).
2. Fragments: with failures at 1-based frames ``f_k`` and ``skip`` = 5, the break points are
   ``[1] + [f_k + skip if f_k + skip <= N]``. Each fragment from one break point to the next *inclusive*
   has NaN replaced by 0 and is zero-padded to ``L`` = the longest sequence (the failure counts as 0 overlap
   for the rest of the curve). The last fragment (from the last break point to the end) gets NaN -> 0 but is
   not padded (NaN beyond its end). A run without failures keeps its overlaps unchanged, cut to ``L``.
3. Weights: each fragment of a run weighs ``1 / (number of runs of that sequence)``.
4. Curve ``Phi(n)``, ``n = 1..L``, starts as zeros: ``Phi(1) = 1``; otherwise over the fragments whose entry
   ``n`` is not NaN, the weighted mean of ``mean(fragment[2..n])``; 0 if no fragment has an entry at ``n``.
5. EAO = mean of the non-NaN ``Phi(n)`` for ``n`` in ``[low, high]`` (vot2018: 100..356, vot2016: 108..371,
   the legacy toolkit's KDE intervals of the real datasets). The range is clipped to the curve; NaN if empty.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from d3s_vot.common.cli import CliArgumentParser, UsageError, UserError, run_cli
from d3s_vot.integrations.vot.legacy_overlap import (DEFAULT_OVERLAP, OVERLAP_DEFINITIONS, OverlapDefinition,
                                                     overlap_definition, region_overlaps)

LEGACY_INTERVALS = {"vot2018": (100, 356), "vot2016": (108, 371)}
SKIP_INITIALIZE = 5
MAX_REPETITIONS = 15
DETERMINISTIC_CHECK = 3
DETERMINISTIC_OVERLAP = 0.999
REPETITIONS_RULE = ("is_deterministic: only runs 1-3 when runs 2 and 3 match run 1's special frames and "
                    "overlap it > 0.999 on every other frame")
CURVE_START = "zeros"


class LegacyEAOError(UserError):
    """Bad input (missing workspace, results or sequences): reported as one ``error:`` line."""


@dataclass(frozen=True)
class Run:
    """One repetition on one sequence: per-frame overlaps (NaN on special frames) and failure frames."""

    sequence: str
    overlaps: np.ndarray  # (N,) float, NaN where the trajectory holds a special code
    failures: tuple[int, ...]  # 1-based frame numbers holding the failure code 2


@dataclass(frozen=True)
class LegacyEAO:
    score: float
    curve: np.ndarray  # Phi(n) for n = 1..L (index n-1)
    low: int
    high: int
    runs: int
    sequences: int
    failures: int
    overlap: str | None = None  # the overlap definition's name (None: overlaps given by the caller)

    def definitions(self) -> dict:
        """Which definitions made this number (printed by the CLI)."""
        described = OVERLAP_DEFINITIONS[self.overlap].describe() if self.overlap else "given by the caller"
        return {"overlap": self.overlap, "overlap_description": described, "repetitions": REPETITIONS_RULE,
                "curve_start": CURVE_START}

    def to_dict(self) -> dict:
        return {
            "eao": None if math.isnan(self.score) else self.score,
            "low": self.low,
            "high": self.high,
            "runs": self.runs,
            "sequences": self.sequences,
            "failures": self.failures,
            "definitions": self.definitions(),
            "curve": [None if math.isnan(v) else float(v) for v in self.curve],
        }


def run_fragments(run: Run, max_length: int, skipping: int = SKIP_INITIALIZE) -> list[np.ndarray]:
    """Split a run into fragments of length ``max_length`` (NaN = not observed), see module docstring 2."""
    overlaps = np.asarray(run.overlaps, dtype=np.float64)
    n = overlaps.size
    if not run.failures:
        row = np.full(max_length, np.nan)
        keep = min(n, max_length)
        row[:keep] = overlaps[:keep]
        return [row]
    points = [1] + [f + skipping for f in run.failures if f + skipping <= n]
    zeroed = np.nan_to_num(overlaps, nan=0.0)
    rows = []
    for start, stop in zip(points[:-1], points[1:]):
        piece = zeroed[start - 1 : stop]
        row = np.zeros(max_length)
        row[: min(piece.size, max_length)] = piece[:max_length]
        rows.append(row)
    piece = zeroed[points[-1] - 1 :]
    row = np.full(max_length, np.nan)
    row[: min(piece.size, max_length)] = piece[:max_length]
    rows.append(row)
    return rows


def expected_overlap_curve(runs: Sequence[Run], max_length: int, skipping: int = SKIP_INITIALIZE) -> np.ndarray:
    """The legacy EAO curve ``Phi(1..max_length)`` (module docstring 3-4); NaN everywhere without runs."""
    runs_per_sequence: dict[str, int] = {}
    for run in runs:
        runs_per_sequence[run.sequence] = runs_per_sequence.get(run.sequence, 0) + 1
    rows, weights = [], []
    for run in runs:
        for row in run_fragments(run, max_length, skipping):
            rows.append(row)
            weights.append(1.0 / runs_per_sequence[run.sequence])
    curve = np.full(max_length, np.nan)
    if not rows:
        return curve
    fragments = np.vstack(rows)
    w = np.asarray(weights)
    curve[:] = 0.0  # the Matlab toolkit starts from zeros: a length no fragment reaches stays 0
    curve[0] = 1.0
    for n in range(2, max_length + 1):
        usable = ~np.isnan(fragments[:, n - 1])
        if not usable.any():
            continue
        means = fragments[usable, 1:n].mean(axis=1)
        curve[n - 1] = np.sum(means * w[usable]) / np.sum(w[usable])
    return curve


def eao_score(curve: np.ndarray, low: int, high: int) -> float:
    """Mean of the non-NaN curve values at ``n`` in ``[low, high]`` (1-based, clipped to the curve)."""
    values = np.asarray(curve, dtype=np.float64)[max(low, 1) - 1 : min(high, len(curve))]
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def legacy_eao(runs: Sequence[Run], max_length: int, low: int, high: int,
               skipping: int = SKIP_INITIALIZE, overlap: str | None = None) -> LegacyEAO:
    curve = expected_overlap_curve(runs, max_length, skipping)
    return LegacyEAO(eao_score(curve, low, high), curve, low, high, len(runs),
                     len({r.sequence for r in runs}), sum(len(r.failures) for r in runs), overlap)


# --- reading a workspace ------------------------------------------------------------------------------


def _require_vot():
    try:
        import vot.region  # noqa: F401
    except ImportError as exc:
        raise LegacyEAOError(f"the VOT toolkit is needed to read results ({exc}); "
                             "pip install 'd3s_vot[vot]' (vot-toolkit==0.7.4)") from None


def result_file(directory: Path, sequence: str, repetition: int) -> Path | None:
    """The trajectory of one repetition: ``<seq>_<rep:03d>.bin`` (toolkit default) or ``.txt``."""
    for suffix in (".bin", ".txt"):
        path = directory / f"{sequence}_{repetition:03d}{suffix}"
        if path.is_file():
            return path
    return None


def read_regions(path: Path) -> list:
    """A trajectory or ground-truth file as ``vot.region`` objects (text or the toolkit's binary format)."""
    from vot.region.io import read_trajectory

    try:
        return read_trajectory(str(path))
    except Exception as exc:  # noqa: BLE001 - the toolkit raises assorted errors on malformed files
        raise LegacyEAOError(f"cannot read {path}: {exc}") from None


def run_from_regions(sequence: str, trajectory: list, groundtruth: list, bounds: tuple[int, int],
                     overlap: OverlapDefinition | str = DEFAULT_OVERLAP) -> Run:
    """Overlaps (bounded, NaN on specials) and failures of one trajectory against the ground truth."""
    from vot.region import Special

    definition = overlap_definition(overlap) if isinstance(overlap, str) else overlap
    if len(trajectory) != len(groundtruth):
        raise LegacyEAOError(f"{sequence}: trajectory has {len(trajectory)} frames, ground truth {len(groundtruth)}")
    _check_supported(sequence, trajectory, definition)
    _check_supported(sequence, groundtruth, definition)
    overlaps = region_overlaps(trajectory, groundtruth, bounds, definition)
    failures = tuple(i + 1 for i, region in enumerate(trajectory) if isinstance(region, Special) and region.code == 2)
    return Run(sequence, overlaps, failures)


def _check_supported(sequence: str, regions: list, definition: OverlapDefinition) -> None:
    from vot.region import Mask

    if definition.engine == "trax" and any(isinstance(r, Mask) for r in regions):
        raise LegacyEAOError(f"{sequence}: mask regions have no Matlab-toolkit overlap "
                             f"(VOT2016/2018 use polygons); use --overlap toolkit")


def is_deterministic(trajectories: Sequence[list], groundtruth_bounds: tuple[int, int],
                     overlap: OverlapDefinition | str = DEFAULT_OVERLAP) -> bool:
    """The Matlab toolkit's test on runs 1..3: same length, special codes on the same frames, and an overlap
    above 0.999 between run 1 and each other run on every remaining frame (a NaN overlap fails)."""
    from vot.region import Special

    definition = overlap_definition(overlap) if isinstance(overlap, str) else overlap
    if len(trajectories) < DETERMINISTIC_CHECK or any(t is None for t in trajectories[:DETERMINISTIC_CHECK]):
        return False
    baseline = trajectories[0]
    valid = [not isinstance(r, Special) for r in baseline]
    for trial in trajectories[1:DETERMINISTIC_CHECK]:
        if len(trial) != len(baseline) or [not isinstance(r, Special) for r in trial] != valid:
            return False
        frames = [i for i, v in enumerate(valid) if v]
        same = region_overlaps([baseline[i] for i in frames], [trial[i] for i in frames], groundtruth_bounds,
                               definition)
        if not np.all(same > DETERMINISTIC_OVERLAP):
            return False
    return True


def sequence_runs(results_dir: Path, sequence_dir: Path, overlap: OverlapDefinition | str = DEFAULT_OVERLAP) -> list[Run]:
    """All counted repetitions of one sequence (only 1-3 when :func:`is_deterministic` holds for them)."""
    from vot.dataset.common import read_sequence

    definition = overlap_definition(overlap) if isinstance(overlap, str) else overlap
    name = sequence_dir.name
    seq = read_sequence(str(sequence_dir))
    if seq is None:
        raise LegacyEAOError(f"{sequence_dir} is not a VOT sequence (no 'sequence' file)")
    groundtruth = seq.groundtruth()
    bounds = tuple(seq.size)
    trajectories = {}
    for repetition in range(1, MAX_REPETITIONS + 1):
        path = result_file(results_dir / name, name, repetition)
        if path is not None:
            trajectories[repetition] = read_regions(path)
    first = [trajectories.get(r) for r in range(1, DETERMINISTIC_CHECK + 1)]
    if is_deterministic(first, bounds, definition):
        trajectories = {r: t for r, t in trajectories.items() if r <= DETERMINISTIC_CHECK}
    return [run_from_regions(name, t, groundtruth, bounds, definition) for _, t in sorted(trajectories.items())]


def _sequences_dir(workspace: Path) -> Path:
    config = workspace / "config.yaml"
    if config.is_file():
        import yaml

        data = yaml.safe_load(config.read_text()) or {}
        if data.get("sequences"):
            path = Path(data["sequences"])
            return path if path.is_absolute() else workspace / path
    return workspace / "sequences"


def workspace_legacy_eao(workspace: str | Path, tracker: str, stack: str = "vot2018", experiment: str = "baseline",
                         low: int | None = None, high: int | None = None,
                         sequences_dir: str | Path | None = None, overlap: str = DEFAULT_OVERLAP,
                         progress: bool = False) -> LegacyEAO:
    """Legacy EAO of ``tracker``'s ``experiment`` results in a VOT workspace.

    ``overlap``: the per-frame overlap definition (:data:`.legacy_overlap.OVERLAP_DEFINITIONS`); the default
    ``matlab`` is what the Matlab toolkit used for VOT2016/2018."""
    _require_vot()
    if overlap not in OVERLAP_DEFINITIONS:
        raise LegacyEAOError(f"unknown overlap definition {overlap!r} (choose from {', '.join(OVERLAP_DEFINITIONS)})")
    ws = Path(workspace)
    if not ws.is_dir():
        raise LegacyEAOError(f"workspace {ws} does not exist")
    seq_root = Path(sequences_dir) if sequences_dir else _sequences_dir(ws)
    list_file = seq_root / "list.txt"
    if not list_file.is_file():
        raise LegacyEAOError(f"{list_file} not found (the workspace has no dataset; see docs/vot.md)")
    names = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
    results_dir = ws / "results" / tracker / experiment
    if not results_dir.is_dir():
        raise LegacyEAOError(f"no results at {results_dir} (run: vot evaluate --workspace {ws} {tracker})")
    default_low, default_high = LEGACY_INTERVALS[stack]
    from tqdm import tqdm

    runs, lengths = [], []
    for name in tqdm(names, desc="legacy EAO", unit="seq", disable=not progress):
        seq_runs = sequence_runs(results_dir, seq_root / name, overlap)
        if not seq_runs:
            raise LegacyEAOError(f"no results for sequence {name} in {results_dir / name}")
        runs.extend(seq_runs)
        lengths.append(seq_runs[0].overlaps.size)
    return legacy_eao(runs, max(lengths), default_low if low is None else low,
                      default_high if high is None else high, overlap=overlap)


def main(argv: list[str] | None = None) -> int:
    return run_cli(_legacy_eao, argv)


def _legacy_eao(argv: list[str] | None) -> int:
    parser = CliArgumentParser(prog="python -m d3s_vot.legacy_eao", description=__doc__.splitlines()[0])
    parser.add_argument("workspace", help="VOT workspace directory")
    parser.add_argument("tracker", help="tracker identifier (results/<tracker>/)")
    parser.add_argument("--stack", choices=sorted(LEGACY_INTERVALS), default="vot2018",
                        help="which legacy EAO interval to use (default vot2018: 100..356; vot2016: 108..371)")
    parser.add_argument("--experiment", default="baseline", help="supervised experiment (default baseline)")
    parser.add_argument("--low", type=int, help="override the interval start (1-based frame count)")
    parser.add_argument("--high", type=int, help="override the interval end (inclusive)")
    parser.add_argument("--sequences", help="dataset directory (default: from config.yaml, else WORKSPACE/sequences)")
    parser.add_argument("--overlap", choices=list(OVERLAP_DEFINITIONS), default=DEFAULT_OVERLAP,
                        help="per-frame overlap definition (default matlab: trax's default rasterisation, as the "
                             "Matlab toolkit for VOT2016/2018; toolkit: vot-toolkit's; see docs/legacy_eao.md)")
    parser.add_argument("--json", action="store_true", help="print the result (with the curve) as JSON")
    args = parser.parse_args(argv)
    if (args.low is not None and args.low < 1) or (args.low or 1) > (args.high or sys.maxsize):
        raise UsageError("need 1 <= --low <= --high")
    result = workspace_legacy_eao(args.workspace, args.tracker, args.stack, args.experiment,
                                  args.low, args.high, args.sequences, args.overlap,
                                  progress=sys.stderr.isatty())
    if args.json:
        print(json.dumps({"tracker": args.tracker, "experiment": args.experiment, "stack": args.stack,
                          **result.to_dict()}, indent=2))
    else:
        score = "nan (interval beyond the curve)" if math.isnan(result.score) else f"{result.score:.4f}"
        print(f"{args.tracker} {args.experiment}: legacy EAO ({args.stack}, frames {result.low}..{result.high}) "
              f"= {score}  [{result.sequences} sequences, {result.runs} runs, {result.failures} failures, "
              f"overlap {result.overlap}, curve from zeros, runs by is_deterministic]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
