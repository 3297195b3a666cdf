"""``python -m d3s_vot.synthetic FORMAT OUT_DIR [options]``: write a synthetic dataset in a benchmark's layout.

Each format lives in ``d3s_vot.synthetic.<format>`` and exposes ``add_arguments(parser)`` and
``main(args) -> int``, which lets its errors propagate: this dispatcher prints them as one ``error:`` line. Modules are imported lazily so one missing or broken format does not break the others.
"""

from __future__ import annotations

import importlib
import sys

from d3s_vot.common.cli import CliArgumentParser, run_cli

FORMATS = {
    "vot": "VOT toolkit workspace sequences (list.txt, sequence, color/, groundtruth.txt, *.tag)",
    "got10k": "GOT-10k dataset layout",
    "trackingnet": "TrackingNet dataset layout",
    "ytvos": "YouTube-VOS style segmentation training data",
    "davis": "DAVIS 2016/2017 layout (JPEGImages/480p, palette Annotations/480p, ImageSets), several objects",
}


def _load_format(name: str):
    module_name = f"d3s_vot.synthetic.{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise
    if not (hasattr(module, "add_arguments") and hasattr(module, "main")):
        return None
    return module


def main(argv: list[str] | None = None) -> int:
    # the writers raise ValueError for an unusable option value (sizes, counts, an existing folder
    # without --overwrite is a FileExistsError): all user errors, reported here once for every format
    return run_cli(_write, list(sys.argv[1:] if argv is None else argv), user_errors=(ValueError,))


def _write(argv: list[str]) -> int:
    parser = CliArgumentParser(prog="python -m d3s_vot.synthetic", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="format", metavar="FORMAT", parser_class=CliArgumentParser)
    # Only the requested format is imported; the others get a placeholder parser for --help.
    requested = next((a for a in argv if not a.startswith("-")), None)
    for name, help_text in FORMATS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == requested:
            module = _load_format(name)
            if module is None:
                print(f"error: format {name!r} is not available (module d3s_vot.synthetic.{name} is missing)",
                      file=sys.stderr)
                return 2
            module.add_arguments(sub_parser)
            sub_parser.set_defaults(_run=module.main)
    args = parser.parse_args(argv)
    if args.format is None:
        print(f"error: choose a format: {', '.join(FORMATS)}", file=sys.stderr)
        return 2
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
