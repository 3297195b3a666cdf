"""``python -m d3s_vot.demo``: the offline demo (make demo).

Kept under this name; the code is in :mod:`d3s_vot.tools.demo`."""
import sys

from d3s_vot.tools.demo import main

if __name__ == "__main__":
    sys.exit(main())
