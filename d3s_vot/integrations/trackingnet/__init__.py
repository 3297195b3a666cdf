"""TrackingNet: ``dataset`` (the on-disk layout), ``metrics`` (the official devkit's definitions) and
``evaluate`` (``python -m d3s_vot.trackingnet_eval``: runner, packer, scorer)."""
