"""``python -m d3s_vot.legacy_eao``: VOT2016/2018 EAO as the legacy Matlab toolkit computed it.

Kept under this name; the code is in :mod:`d3s_vot.integrations.vot.legacy_eao`."""
import sys

from d3s_vot.integrations.vot.legacy_eao import main

if __name__ == "__main__":
    sys.exit(main())
