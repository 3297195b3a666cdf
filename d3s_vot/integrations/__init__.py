"""The tracker in the benchmarks' own tooling: ``vot`` (the TraX entry the VOT toolkit starts, reference
trackers, legacy EAO, toolkit FPS), ``got10k`` and ``trackingnet`` (runners, data readers, scorers) and
``box_runner`` (the sharded box-mode runner both of those use). Each builds trackers with
:func:`d3s_vot.build_tracker`."""
