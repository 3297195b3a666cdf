"""``python -m d3s_vot.vot_speed``: FPS from the VOT toolkit's timing files.

Kept under this name; the code is in :mod:`d3s_vot.integrations.vot.toolkit_fps`."""
import sys

from d3s_vot.integrations.vot.toolkit_fps import main

if __name__ == "__main__":
    sys.exit(main())
