"""Command-line tools on top of the tracker: ``track`` (one sequence folder), ``demo`` (``make demo``),
``report`` (tables beside the paper's numbers), ``speed_bench`` (``python -m d3s_vot.bench``) and
``compute_floors`` (the least time the DCF optimisations can take on a machine)."""
