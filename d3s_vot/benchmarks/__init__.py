"""Shared pieces of the GOT-10k and TrackingNet runners.

``boxio`` (strict box-file parsing, atomic writes), ``trackers`` (D3S and the oracle/static baselines
behind one small interface), ``runner`` (the per-sequence loop), ``sharding`` (``--workers`` and
torchrun), ``fps``, ``got10k_data``/``got10k_adapter`` and ``trackingnet_data``/``trackingnet_metrics``.
"""
