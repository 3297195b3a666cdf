"""``python -m d3s_vot.vot_tracker``: the TraX entry point the VOT toolkit starts.

Kept under this name; the code is in :mod:`d3s_vot.integrations.vot.trax_entry`."""
import sys

from d3s_vot.integrations.vot.trax_entry import main

if __name__ == "__main__":
    sys.exit(main())
