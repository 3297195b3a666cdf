"""D3S (or a baseline) as a ``got10k.trackers.Tracker``, for use with the official toolkit directly.

    from got10k.experiments import ExperimentGOT10k
    tracker = make_got10k_tracker(RunnerTrackerSpec(d3s=TrackerSpec(weights="d3s.safetensors")))
    ExperimentGOT10k(root, "val", result_dir=os.path.abspath("results")).run(tracker)

The toolkit hands over PIL RGB images and the initial 0-based ``[x, y, w, h]``; D3S runs in box mode.
``is_deterministic=True`` (D3S with ``deterministic=True`` repeats itself exactly), so the toolkit runs
each sequence once instead of three times. ``python -m d3s_vot.got10k_eval`` uses its own loop with the
same semantics plus sharding and atomic writes, and the toolkit only for the report.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from got10k.trackers import Tracker

from d3s_vot.integrations.box_runner.trackers import BoxTracker, RunnerTrackerSpec, build_box_tracker


class Got10kTracker(Tracker):
    """Adapts a :class:`~d3s_vot.integrations.box_runner.trackers.BoxTracker` to the got10k toolkit."""

    def __init__(self, box_tracker: BoxTracker, name: str, is_deterministic: bool = True):
        super().__init__(name=name, is_deterministic=is_deterministic)
        self.box_tracker = box_tracker
        self.sequence = ""      # the toolkit never says which sequence it runs; set it for the oracle

    def init(self, image, box) -> None:
        self.box_tracker.start(self.sequence, _rgb_array(image), np.asarray(box, dtype=np.float64))

    def update(self, image) -> np.ndarray:
        return np.asarray(self.box_tracker.update(_rgb_array(image)), dtype=np.float64)


def _rgb_array(image) -> np.ndarray:
    if getattr(image, "mode", "RGB") != "RGB":
        image = image.convert("RGB")
    return np.asarray(image)


def make_got10k_tracker(spec: RunnerTrackerSpec, name: Optional[str] = None) -> Got10kTracker:
    return Got10kTracker(build_box_tracker(spec), name or spec.default_name())
