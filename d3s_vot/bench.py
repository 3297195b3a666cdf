"""``python -m d3s_vot.bench``: the speed benchmark.

Kept under this name; the code is in :mod:`d3s_vot.tools.speed_bench`."""
import sys

from d3s_vot.tools.speed_bench import main

if __name__ == "__main__":
    sys.exit(main())
