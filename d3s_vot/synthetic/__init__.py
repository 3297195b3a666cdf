"""Synthetic tracking benchmarks: one scene generator, one writer per dataset format.

``scene`` renders sequences with exact ground truth; ``vot``, ``got10k``, ``trackingnet`` and ``ytvos`` write
them in the layout of the respective benchmark (``python -m d3s_vot.synthetic FORMAT OUT_DIR``).
"""

from d3s_vot.synthetic.scene import SceneConfig, SyntheticSequence, generate_sequence

__all__ = ["SceneConfig", "SyntheticSequence", "generate_sequence"]
