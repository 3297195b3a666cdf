"""``python -m d3s_vot.report``: comparison tables with the paper's numbers.

Kept under this name; the code is in :mod:`d3s_vot.tools.report`."""
import sys

from d3s_vot.tools.report import main

if __name__ == "__main__":
    sys.exit(main())
