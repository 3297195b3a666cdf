"""A strict reader of the DAVIS layout and the two evaluation protocols.

    <root>/JPEGImages/480p/<seq>/00000.jpg ...
    <root>/Annotations/480p/<seq>/00000.png ...     indexed PNGs, pixel value = object id (255: void)
    <root>/ImageSets/2016/val.txt, ImageSets/2017/val.txt   one sequence name per line

(the original DAVIS 2016 download lists its sequences in ``ImageSets/480p/<split>.txt`` as image/annotation
path pairs; that file is read too.)

* **2017**: every object id of the first frame is one object; the ids must be 1..N and all present in
  frame 0 (the official code counts N as the largest id there). Void pixels (255) count as background,
  as in the official semi-supervised evaluation.
* **2016**: one object, the union of all object ids (on the 2017 annotations this merges the objects
  into one foreground). The original DAVIS 2016 annotations are 0/255 masks whose 255 is the object:
  a sequence whose first annotation holds only 0 and 255 is read that way, as the DAVIS 2016 code reads
  any non-zero pixel as the object.

Problems are :class:`BenchmarkError` naming the file, found before any tracking starts where possible.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from d3s_vot.integrations.box_runner.boxio import BenchmarkError
from d3s_vot.integrations.davis.labels import read_label_png

YEARS = ("2016", "2017")
RESOLUTION = "480p"
VOID = 255
DOWNLOAD_HINT = "get DAVIS from https://davischallenge.org/davis2017/code.html (or make a synthetic one with " \
                "`python -m d3s_vot.synthetic davis OUT`)"


@dataclass(frozen=True)
class DavisSequence:
    """One sequence: its frames, their annotations (None where there is none) and its objects."""

    name: str
    year: str
    frame_files: Tuple[str, ...]
    annotation_files: Tuple[Optional[str], ...]
    object_ids: Tuple[int, ...]          # 2016: (1,)
    size: Tuple[int, int]                # H, W of the first annotation (every frame must have it)
    void: Optional[int] = VOID           # None: 255 is the object (a DAVIS 2016 0/255 mask)

    @property
    def frame_names(self) -> Tuple[str, ...]:
        """File stems (``00000``, ...): result PNGs are named after them."""
        return tuple(Path(f).stem for f in self.frame_files)

    @property
    def fully_annotated(self) -> bool:
        return all(a is not None for a in self.annotation_files)

    def labels(self, index: int) -> np.ndarray:
        """Frame ``index``'s ground truth under this year's protocol (``H x W`` uint8, 0 = background),
        checked against the first frame's size and objects."""
        path = self.annotation_files[index]
        if path is None:
            raise BenchmarkError(f"{self.name}: frame {self.frame_names[index]} has no annotation "
                                 f"(expected {annotation_path_for(self, index)})")
        raw = read_label_png(path)
        if raw.shape != self.size:
            raise BenchmarkError(f"{path}: {raw.shape[1]}x{raw.shape[0]} pixels, but the first annotation "
                                 f"{self.annotation_files[0]} is {self.size[1]}x{self.size[0]}")
        labels = protocol_labels(raw, self.year, self.void)
        if self.year == "2017":
            extra = sorted(set(np.unique(labels).tolist()) - {0} - set(self.object_ids))
            if extra:
                raise BenchmarkError(f"{path}: object id(s) {', '.join(map(str, extra))} do not appear in the "
                                     f"first frame ({self.annotation_files[0]}: ids "
                                     f"{', '.join(map(str, self.object_ids))}); DAVIS objects start in frame 0")
        return labels


def protocol_labels(raw: np.ndarray, year: str, void: Optional[int] = VOID) -> np.ndarray:
    """Void pixels (``void``) -> background; then 2016: every object pixel -> object 1."""
    labels = raw.copy()
    if void is not None:
        labels[labels == void] = 0
    if year == "2016":
        return (labels != 0).astype(np.uint8)
    return labels


def void_label(first: np.ndarray, year: str) -> Optional[int]:
    """255 is void, except in a DAVIS 2016 0/255 mask, where it is the object."""
    if year == "2016" and set(np.unique(first).tolist()) == {0, VOID}:
        return None
    return VOID


def annotation_path_for(sequence: DavisSequence, index: int) -> Path:
    frame = Path(sequence.frame_files[index])
    return frame.parents[3] / "Annotations" / RESOLUTION / sequence.name / f"{frame.stem}.png"


def _image_size(path: Path) -> Tuple[int, int]:
    try:
        with Image.open(path) as image:
            return image.size[1], image.size[0]
    except (UnidentifiedImageError, OSError) as exc:
        raise BenchmarkError(f"{path}: cannot read the image ({exc})") from None


def list_file(root: Path, year: str, split: str) -> Tuple[Path, List[str]]:
    """The split's sequence names, from ``ImageSets/<year>/<split>.txt`` (or DAVIS 2016's own
    ``ImageSets/480p/<split>.txt`` of path pairs)."""
    primary = root / "ImageSets" / year / f"{split}.txt"
    legacy = root / "ImageSets" / RESOLUTION / f"{split}.txt"
    path = primary if primary.is_file() or year != "2016" or not legacy.is_file() else legacy
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise BenchmarkError(f"{primary}: not found; {DOWNLOAD_HINT}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchmarkError(f"{path}: cannot read it ({exc})") from None
    names: List[str] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        if path == legacy:          # "/JPEGImages/480p/<seq>/00000.jpg /Annotations/480p/<seq>/00000.png"
            parts = text.split()[0].strip("/").split("/")
            if len(parts) < 4:
                raise BenchmarkError(f"{path}, line {number}: expected '/JPEGImages/480p/<sequence>/<frame>.jpg "
                                     f"...', got {text!r}")
            text = parts[2]
        if text not in names:
            names.append(text)
    if not names:
        raise BenchmarkError(f"{path}: lists no sequences")
    return path, names


def first_frame_objects(path: Path, labels: np.ndarray, year: str) -> Tuple[int, ...]:
    """The objects the first annotation defines; an empty mask or a gap in the ids is an error."""
    present = sorted(set(np.unique(labels).tolist()) - {0})
    if not present:
        raise BenchmarkError(f"{path}: no object in the first frame's annotation (only background 0 and void "
                             "255 pixels); there is nothing to track")
    if year == "2016":
        return (1,)
    missing = sorted(set(range(1, present[-1] + 1)) - set(present))
    if missing:
        raise BenchmarkError(f"{path}: object id(s) {', '.join(map(str, missing))} absent in the first frame "
                             f"(it has ids {', '.join(map(str, present))}); DAVIS numbers the objects 1..N and "
                             "every object must be in frame 0 to initialise the tracker")
    return tuple(present)


def load_sequence(root: Path, name: str, year: str, source: str) -> DavisSequence:
    image_dir = root / "JPEGImages" / RESOLUTION / name
    if not image_dir.is_dir():
        raise BenchmarkError(f"{source}: sequence folder {image_dir} does not exist")
    frames = sorted(image_dir.glob("*.jpg"))
    if not frames:
        raise BenchmarkError(f"{image_dir}: no *.jpg frames")
    annotation_dir = root / "Annotations" / RESOLUTION / name
    annotations = tuple(str(p) if p.is_file() else None
                        for p in (annotation_dir / f"{f.stem}.png" for f in frames))
    first = annotation_dir / f"{frames[0].stem}.png"
    if annotations[0] is None:
        raise BenchmarkError(f"{first}: missing; the first frame's annotation defines the objects to track")
    raw = read_label_png(first)
    height, width = _image_size(frames[0])
    if raw.shape != (height, width):
        raise BenchmarkError(f"{first}: {raw.shape[1]}x{raw.shape[0]} pixels, but the frame {frames[0]} is "
                             f"{width}x{height}")
    void = void_label(raw, year)
    objects = first_frame_objects(first, protocol_labels(raw, year, void), year)
    return DavisSequence(name, year, tuple(str(f) for f in frames), annotations, objects, raw.shape, void)


def load_split(root, year: str, split: str, only: Optional[Sequence[str]] = None) -> List[DavisSequence]:
    """Every sequence of the split (or those named in ``only``, in the split's order)."""
    if year not in YEARS:
        raise BenchmarkError(f"unknown DAVIS year {year!r}; choose one of {', '.join(YEARS)}")
    root = Path(root)
    if not root.is_dir():
        raise BenchmarkError(f"DAVIS root {root} does not exist; {DOWNLOAD_HINT}")
    source, names = list_file(root, year, split)
    if only:
        unknown = [n for n in only if n not in names]
        if unknown:
            raise BenchmarkError(f"sequence(s) {', '.join(unknown)} are not in {source}")
        names = [n for n in names if n in set(only)]
    return [load_sequence(root, name, year, str(source)) for name in names]
