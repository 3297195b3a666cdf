"""``python -m d3s_vot.vot_reference_trackers``: the TraX reference trackers (oracle, static).

Kept under this name; the code is in :mod:`d3s_vot.integrations.vot.reference_trackers`."""
import sys

from d3s_vot.integrations.vot.reference_trackers import main

if __name__ == "__main__":
    sys.exit(main())
