"""The box-mode runner the GOT-10k and TrackingNet integrations share.

``boxio`` (strict box-file parsing, atomic writes), ``trackers`` (D3S and the oracle/static baselines
behind one small interface), ``runner`` (the per-sequence loop), ``sharding`` (``--workers`` and
torchrun), ``cli`` (the shared options) and ``fps``.
"""
