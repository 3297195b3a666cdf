"""DAVIS 2016/2017 semi-supervised video object segmentation (``python -m d3s_vot.davis_eval``).

``labels`` (indexed PNGs with the DAVIS palette), ``dataset`` (the on-disk layout and the two protocols),
``metrics`` (region J, boundary F, mean/recall/decay), ``scoring`` (a result folder against the ground
truth), ``trackers`` (D3S over several objects, and the oracle/static baselines), ``runner`` (per-sequence
jobs, resume, sharding) and ``evaluate`` (the command line).
"""
