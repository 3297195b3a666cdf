"""GOT-10k: ``dataset`` (the on-disk layout), ``evaluate`` (``python -m d3s_vot.got10k_eval``: runner and
the official toolkit's scores) and ``adapter`` (D3S as a ``got10k.trackers.Tracker``)."""
