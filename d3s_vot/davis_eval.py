"""``python -m d3s_vot.davis_eval``: the DAVIS 2016/2017 runner and scorer.

The code is in :mod:`d3s_vot.integrations.davis.evaluate`."""
import sys

from d3s_vot.integrations.davis.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
