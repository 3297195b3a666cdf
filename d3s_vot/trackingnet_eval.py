"""``python -m d3s_vot.trackingnet_eval``: the TrackingNet runner, packer and scorer.

Kept under this name; the code is in :mod:`d3s_vot.integrations.trackingnet.evaluate`."""
import sys

from d3s_vot.integrations.trackingnet.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
