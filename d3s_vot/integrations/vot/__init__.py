"""The VOT toolkit: ``trax_entry`` (``python -m d3s_vot.vot_tracker``), ``reference_trackers`` (oracle and
static TraX trackers), ``legacy_eao`` (the Matlab toolkit's EAO), ``toolkit_fps`` (speed from its timing files)."""
