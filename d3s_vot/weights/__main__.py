"""``python -m d3s_vot.weights pack|inspect|verify``: see :mod:`d3s_vot.weights.cli`."""
import sys

from d3s_vot.weights.cli import main

sys.exit(main())
