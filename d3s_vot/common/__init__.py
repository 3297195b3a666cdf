"""Helpers every layer shares: frame folders, region text and atomic writes (``io_utils``), the
torchrun process context (``distributed``)."""
