"""TraX entry point for the VOT toolkit: ``python -m d3s_vot.vot_tracker`` (console script ``d3s-vot-tracker``).

Register it in ``trackers.ini`` with ``protocol = traxpython`` and ``command = d3s_vot.vot_tracker``. The
weights are loaded before the TraX handshake (the handshake is not subject to the toolkit's ``timeout``),
then one ``trax.Server`` loop answers any number of INITIALIZE requests in the same process, so a
re-initialisation after a failure costs no process restart (the ``vot.py`` module's ``vot=python`` metadata
would force one; we set none).

Configuration comes from the environment (``env_<NAME>`` keys in ``trackers.ini``):

* ``D3S_WEIGHTS``: weights file (default: ``load_weights()``'s search, see ``d3s_vot.weights``).
* ``D3S_RANDOM_WEIGHTS=<seed>``: untrained random weights instead, for tests and demos only.
* ``D3S_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``; default cuda if available), ``D3S_DTYPE`` (``float32``).
* ``D3S_PARAMS="name=value,name=value"``: ``D3SParams`` overrides.
* ``D3S_OUTPUT=polygon|mask|rectangle`` (default ``polygon``): the reported region.
* ``D3S_INIT_LOG=<file>``: append ``<pid> <init count> <objects>`` per INITIALIZE (to verify process reuse).

Multi-object (VOTS2023-2025): the server declares multi-object support. An INITIALIZE request with N
objects starts N D3S states (:meth:`D3STracker.fork`, one set of networks loaded once) and every reply
carries the N regions in request order; with mask output the N masks are made disjoint (a pixel goes to
the object with the highest segmentation score). A FRAME request that adds objects is refused with an
``error:`` line. Single-object stacks (VOT2016-2022) send one object and see no difference.

Init polygons are used at full float precision (the original wrapper rounded them to 2 decimals; VOT
ground truth has at most 2-4 decimals, so this changes nothing measurable and keeps the value exact).
Every reply carries a ``confidence`` property (the tracker's score), stored by the toolkit as
``<seq>_<rep>_confidence.value``. On any error the session ends with ``error: ...`` on stderr (the toolkit
keeps it in ``WS/logs``) and exit code 1; nothing hangs.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

import numpy as np

from d3s_vot.factory import DTYPES, TrackerSpec

OUTPUT_FORMATS = ("polygon", "mask", "rectangle")
BROKEN_TOOLKIT_PREFIXES = ("0.8", "0.9")


class TrackerLike(Protocol):
    """What the server loop needs: D3STracker, or a reference tracker in tests."""

    def initialize(self, image: np.ndarray, region: np.ndarray) -> Any: ...

    def track(self, image: np.ndarray) -> Any: ...


class ObjectsTracker(Protocol):
    """The targets of one TraX session: :class:`d3s_vot.tracker.multi.MultiObjectTracker` for D3S (N forks over
    one set of networks), or the reference trackers' set in tests."""

    def initialize(self, image: np.ndarray, regions: Mapping[int, np.ndarray]) -> None: ...

    def track(self, image: np.ndarray) -> Mapping[int, Any]: ...


class EntryError(Exception):
    """A problem the user must fix (configuration, input); reported as one ``error:`` line."""


@dataclass(frozen=True)
class EntryConfig:
    """The entry point's configuration, read from the environment by :meth:`from_env`."""

    tracker: TrackerSpec = TrackerSpec()      # what d3s_vot.build_tracker builds
    output: str = "polygon"
    init_log: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "EntryConfig":
        env = os.environ if environ is None else environ
        output = env.get("D3S_OUTPUT", "polygon").strip().lower() or "polygon"
        if output not in OUTPUT_FORMATS:
            raise EntryError(f"D3S_OUTPUT={output!r} is not one of {', '.join(OUTPUT_FORMATS)}")
        dtype = env.get("D3S_DTYPE", "float32").strip().lower() or "float32"
        if dtype not in DTYPES:
            raise EntryError(f"D3S_DTYPE={dtype!r} is not one of {', '.join(DTYPES)}")
        seed_text = env.get("D3S_RANDOM_WEIGHTS", "").strip()
        seed = None
        if seed_text:
            try:
                seed = int(seed_text)
            except ValueError:
                raise EntryError(f"D3S_RANDOM_WEIGHTS={seed_text!r} must be an integer seed") from None
        spec = TrackerSpec(weights=env.get("D3S_WEIGHTS") or None, random_weights_seed=seed,
                           device=env.get("D3S_DEVICE") or None, dtype=dtype,
                           params=parse_param_overrides(env.get("D3S_PARAMS", "")))
        return cls(
            tracker=spec,
            output=output,
            init_log=env.get("D3S_INIT_LOG") or None,
        )


def parse_param_overrides(text: str) -> dict[str, str]:
    """``"a=1,b=(1, 2)"`` -> ``{"a": "1", "b": "(1, 2)"}``; commas inside values are kept."""
    from d3s_vot.params import parse_assignment_list

    try:
        return parse_assignment_list(text, "D3S_PARAMS item")
    except ValueError as exc:
        raise EntryError(str(exc)) from None


def warn_if_broken_toolkit() -> str | None:
    """Return (and print) a warning when vot-toolkit 0.8.x/0.9.x is installed next to us."""
    try:
        version = importlib.metadata.version("vot-toolkit")
    except importlib.metadata.PackageNotFoundError:
        return None
    if not version.startswith(BROKEN_TOOLKIT_PREFIXES):
        return None
    message = (
        f"warning: vot-toolkit {version} is installed; its supervised experiments (baseline/realtime of "
        "vot2016/rgb, vot2018/shortterm) fail with 'Tracker does not support multiple objects' whatever "
        "the tracker does. Use: pip install vot-toolkit==0.7.4 attributee==0.1.9 (see docs/vot.md)"
    )
    print(message, file=sys.stderr)
    return message


# --- region conversion --------------------------------------------------------------------------------


def trax_region_to_init(region: Any, image_shape: tuple[int, ...]) -> np.ndarray:
    """TraX init region -> an array for :func:`~d3s_vot.tracker.regions.normalize_region`: box
    ``[x,y,w,h]``, ``2*N`` polygon numbers, or a full-image mask (the TraX mask pasted at its offset,
    clipped to the image).

    Only converts; the checks (finite, positive area, inside the image, ...) are in
    :mod:`d3s_vot.tracker.regions`. Raises ``EntryError`` for special and unsupported region types.
    """
    kind = region.type
    if kind == "rectangle":
        return np.array(region.bounds(), dtype=np.float64)
    if kind == "polygon":
        points = np.array([region.get(i) for i in range(region.size())], dtype=np.float64).reshape(-1)
        if points.size and np.all(np.abs(points) >= np.finfo(np.float32).max):
            # how the trax client converts an empty mask for a tracker that does not take masks
            raise EntryError("the client sent an empty mask (as a polygon with corners at -3.4e38 and 3.4e38)")
        return points
    if kind == "mask":
        height, width = image_shape[:2]
        local = region.array(normalize=False)
        x0, y0 = region.offset()
        mask = np.zeros((height, width), np.uint8)
        h, w = local.shape
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + w, width), min(y0 + h, height)
        if cx0 < cx1 and cy0 < cy1:
            mask[cy0:cy1, cx0:cx1] = local[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] > 0
        if not mask.any() and np.any(local > 0):
            raise EntryError(f"init mask lies entirely outside the {width}x{height} image: its {w}x{h} box "
                             f"starts at x={x0}, y={y0}")
        return mask
    if kind == "special":
        raise EntryError("the client sent a special (unknown) region, e.g. NaN coordinates in groundtruth.txt")
    raise EntryError(f"unsupported init region type {kind!r} (need rectangle, polygon or mask)")


def box_corners(box: np.ndarray) -> np.ndarray:
    """``[x, y, w, h]`` -> (4, 2) corners clockwise from the top-left."""
    x, y, w, h = (float(v) for v in box)
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])


def result_polygon(result: Any) -> np.ndarray:
    """The 4 corners to report: the tracker's polygon, or its 4-number region/box as corners."""
    polygon = getattr(result, "polygon", None)
    if polygon is not None:
        return np.asarray(polygon, dtype=np.float64).reshape(4, 2)
    region = np.asarray(getattr(result, "region", result.box), dtype=np.float64).reshape(-1)
    if region.size == 8:
        return region.reshape(4, 2)
    return box_corners(np.asarray(result.box, dtype=np.float64))


def result_to_trax(result: Any, output: str, init_kind: str):
    """Tracker result -> TraX region: a polygon (polygon init or output), a full-image mask, or a rectangle."""
    from trax.region import Mask, Polygon, Rectangle

    if output == "mask":
        return Mask.create(np.ascontiguousarray(result.mask, dtype=np.uint8), 0, 0)
    if output == "rectangle" or (init_kind == "rectangle" and getattr(result, "polygon", None) is None):
        x, y, w, h = (float(v) for v in result.box)
        return Rectangle.create(x, y, w, h)
    return Polygon.create([(float(x), float(y)) for x, y in result_polygon(result)])


def read_image(path: str) -> np.ndarray:
    """HxWx3 uint8 RGB image; ``EntryError`` naming the path when it cannot be read."""
    import cv2

    if not os.path.isfile(path):
        raise EntryError(f"cannot read image {path!r}: no such file")
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise EntryError(f"cannot read image {path!r}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _confidence(result: Any) -> str:
    score = float(getattr(result, "score", 1.0))
    return f"{score:.4f}" if np.isfinite(score) else "0.0000"


# --- server loop --------------------------------------------------------------------------------------


def _object_label(index: int, count: int) -> str:
    """``"object 2 of 3: "`` in a multi-object request, nothing for a single object (messages stay as before)."""
    return f"object {index} of {count}: " if count > 1 else ""


def init_regions(objects: list, image_shape: tuple[int, ...]) -> dict[int, np.ndarray]:
    """The INITIALIZE request's objects -> ``{index: checked region}``; ``EntryError`` naming the object."""
    if not objects:
        raise EntryError("INITIALIZE request without a region")
    from d3s_vot.tracker.regions import normalize_region       # numpy only: no torch before the handshake

    regions = {}
    for index, (region, _) in enumerate(objects):
        try:
            regions[index] = normalize_region(trax_region_to_init(region, image_shape), image_shape)
        except (EntryError, ValueError) as exc:
            raise EntryError(f"invalid init region: {_object_label(index, len(objects))}{exc}") from None
    return regions


def reply_objects(results: Mapping[int, Any], output: str, init_kinds: list[str],
                  separate: Callable[[Mapping[int, Any]], Mapping[int, np.ndarray]] | None = None) -> list:
    """Per-object results -> the TraX reply ``[(region, {"confidence": ...}), ...]`` in object order. With mask
    output and several objects, ``separate`` (e.g. :func:`d3s_vot.tracker.multi.disjoint_masks`) makes the
    masks disjoint first."""
    from trax.region import Mask

    masks = separate(results) if (separate is not None and output == "mask" and len(results) > 1) else None
    reply = []
    for index, result in results.items():
        if masks is not None:
            region = Mask.create(np.ascontiguousarray(masks[index], dtype=np.uint8), 0, 0)
        else:
            region = result_to_trax(result, output, init_kinds[index])
        reply.append((region, {"confidence": _confidence(result)}))
    return reply


def serve(objects: ObjectsTracker, output: str = "polygon", init_log: str | None = None,
          tracker_name: str = "D3S", on_image: Callable[[str], None] | None = None,
          separate: Callable[[Mapping[int, Any]], Mapping[int, np.ndarray]] | None = None) -> int:
    """Answer TraX requests on stdin/stdout until QUIT; return the process exit code.

    The server declares multi-object support: an INITIALIZE request with N objects (re)starts ``objects``
    with exactly those N targets (any N, at any time, always in this process), and every FRAME request is
    answered with all N regions in the INITIALIZE order. A FRAME request that brings new objects (the
    object count changing mid-sequence) is refused: VOTS gives every target in the first frame.
    Any exception during a request ends the session with its message (never a hang); user errors
    (``EntryError``, ``ValueError``) give one ``error:`` line, anything else also the traceback. An
    unusable init region (checked by :func:`~d3s_vot.tracker.regions.normalize_region`) gives
    ``error: invalid init region: ...`` (``... object K of N: ...`` in a multi-object request).
    """
    from trax import Image, Region, Server, TraxStatus

    region_formats = [Region.RECTANGLE, Region.POLYGON] + ([Region.MASK] if output == "mask" else [])
    server = Server(region_formats, [Image.PATH], ["color"], tracker_name=tracker_name, multiobject=True)
    initializations = 0
    init_kinds: list[str] = []
    try:
        while True:
            request = server.wait()
            if request.type in (TraxStatus.QUIT, TraxStatus.ERROR):
                break
            path = request.image["color"].path()
            if on_image is not None:
                on_image(path)
            image = read_image(path)
            if request.type == TraxStatus.INITIALIZE:
                regions = init_regions(request.objects, image.shape)
                init_kinds = [region.type for region, _ in request.objects]
                objects.initialize(image, regions)
                initializations += 1
                if init_log:
                    with open(init_log, "a") as handle:
                        handle.write(f"{os.getpid()} {initializations} {len(regions)}\n")
                server.status([(region, {"confidence": "1.0000"}) for region, _ in request.objects])
                continue
            if request.objects:
                raise EntryError(f"object count changed mid-sequence: a frame request brought {len(request.objects)} "
                                 f"new object(s) while {len(init_kinds)} are tracked; every target must be given "
                                 "in the INITIALIZE request (VOTS initialises all targets in the first frame)")
            server.status(reply_objects(objects.track(image), output, init_kinds, separate))
    except (EntryError, ValueError) as exc:
        return _abort(server, f"error: {exc}")
    except Exception as exc:  # noqa: BLE001 - the session must end with a message, whatever happened
        traceback.print_exc(file=sys.stderr)
        return _abort(server, f"error: tracker failed: {type(exc).__name__}: {exc}")
    server.quit()
    return 0


def _abort(server: Any, message: str) -> int:
    print(message, file=sys.stderr, flush=True)
    try:
        server.quit(reason=message)
    except Exception:  # noqa: BLE001 - the client may already be gone
        pass
    return 1


# --- D3S construction ---------------------------------------------------------------------------------


def build_d3s_tracker(config: EntryConfig) -> TrackerLike:
    """Load weights and build the tracker (before the handshake: this may take long)."""
    from d3s_vot.factory import build_tracker, check_spec
    from d3s_vot.runtime import tune_cpu_allocator

    spec = config.tracker
    check_spec(spec)            # first: a typo in D3S_PARAMS should not wait for the weights
    if spec.uses_random_weights:
        print(f"d3s-vot-tracker: using RANDOM (untrained) weights, seed {spec.random_weights_seed} "
              "(D3S_RANDOM_WEIGHTS); results are meaningless", file=sys.stderr)
    tune_cpu_allocator()
    return build_tracker(spec)


def main(argv: list[str] | None = None) -> int:
    """Console script: configure from the environment, load D3S, serve TraX."""
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if sys.stdin.isatty() and not os.environ.get("TRAX"):
        print("error: this is a TraX tracker process for the VOT toolkit; register it in trackers.ini "
              "(protocol = traxpython, command = d3s_vot.vot_tracker) and run `vot test D3S` (see docs/vot.md)",
              file=sys.stderr)
        return 2
    warn_if_broken_toolkit()
    try:
        config = EntryConfig.from_env()
        tracker = build_d3s_tracker(config)
    except (EntryError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    except Exception as exc:  # noqa: BLE001 - e.g. WeightsError; one clear line for the toolkit log
        print(f"error: cannot start D3S: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    from d3s_vot.tracker.multi import MultiObjectTracker, disjoint_masks

    return serve(MultiObjectTracker(tracker), config.output, config.init_log, separate=disjoint_masks)


if __name__ == "__main__":
    sys.exit(main())
