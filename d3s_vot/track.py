"""``python -m d3s_vot.track``: track one sequence folder.

Kept under this name; the code is in :mod:`d3s_vot.tools.track`."""
import sys

from d3s_vot.tools.track import main

if __name__ == "__main__":
    sys.exit(main())
