"""``python -m d3s_vot.got10k_eval``: the GOT-10k runner and scorer.

Kept under this name; the code is in :mod:`d3s_vot.integrations.got10k.evaluate`."""
import sys

from d3s_vot.integrations.got10k.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
