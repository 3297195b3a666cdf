"""Network weights for D3S: load the authors' files safely, pack them into one checked file.

D3S runs two ResNet-50s (see ``docs/weights.md``): the segmentation network of the authors'
``SegmNet.pth.tar`` (its own backbone, whose BatchNorm statistics were re-estimated in training) and
torchvision's ImageNet ResNet-50 for the DCF. The authors' file is a pickle of their training
framework, so it is read with a restricted unpickler that never imports or runs the framework's
code; the result is stored as one ``d3s.safetensors`` pack (plain tensors, provenance and a
content hash) that later loads without pickle at all. Nothing is ever downloaded.

Command line: ``python -m d3s_vot.weights pack|inspect|verify`` (``--help`` for details).

This package re-exports its submodules' public names, so ``from d3s_vot.weights import X`` is the
API. The submodules, each depending only on those above it:

* :mod:`.files` -- file names, the cache folder, ``$D3S_WEIGHTS``;
* :mod:`.errors` -- :class:`WeightsError` and the "where to get the files" texts;
* :mod:`.container` -- :class:`D3SWeights`, what every loader returns;
* :mod:`.state` -- the expected keys/shapes and the check of every loaded state dict;
* :mod:`.unpickler` -- the restricted unpickler for other people's pickles;
* :mod:`.pack` -- the ``d3s.safetensors`` format: save, load, check, hashes;
* :mod:`.authors` -- the authors' ``SegmNet.pth.tar`` and torchvision's ResNet-50 file;
* :mod:`.train_checkpoint` -- the one reader of ``d3s_vot.train``'s checkpoint format;
* :mod:`.random_init` -- deterministic untrained weights (tests, demos);
* :mod:`.lookup` -- :func:`load_weights` and the search order (:func:`locate_weights`);
* :mod:`.summary` -- the summaries printed by ``inspect``;
* :mod:`.cli` -- the command line (:func:`main`).

Nothing here imports :mod:`d3s_vot.train`: the trainer depends on this package, not the reverse.
"""
from __future__ import annotations

from .authors import load_backbone_checkpoint, load_segm_checkpoint, segm_state_of, state_dict_of
from .cli import build_parser, main
from .container import D3SWeights
from .errors import D3S_URL, HOW_TO_PACK, WHERE_BACKBONE, WHERE_SEGM, WeightsError, require_file
from .files import (BACKBONE_FILE_NAMES, DEFAULT_CACHE_DIR, PACK_NAME, SEGM_FILE_NAME, WEIGHTS_ENV, PathLike,
                    cache_dir_or_default, default_cache_dir)
from .lookup import find_backbone_file, load_files, load_weights, locate_weights
from .pack import (BACKBONE_PREFIX, PACK_FORMAT, SEGM_PREFIX, PackCheck, check_pack, content_sha256, file_sha256,
                   is_safetensors, load_pack, pack_section, pack_tensors, read_safetensors, save_pack)
from .random_init import RANDOM_NOTE, random_weights
from .state import (MIXER_KEY, check_backbone_state, check_segm_state, checked_weights, conform_state,
                    count_parameters, expected_backbone_shapes, expected_segm_shapes, strip_module_prefix)
from .summary import compare_backbones, describe, describe_checkpoint
from .train_checkpoint import (TRAIN_FORMAT, TRAIN_FORMAT_PREFIX, is_training_checkpoint, stored_weights,
                               training_checkpoint_format, weights_from_training_checkpoint)
from .unpickler import (INERT_MODULE_ROOTS, InertObject, RestrictedUnpickler, UnsafePickleError, restricted_pickle,
                        torch_load_restricted)

__all__ = [
    "BACKBONE_FILE_NAMES", "BACKBONE_PREFIX", "D3SWeights", "D3S_URL", "DEFAULT_CACHE_DIR", "HOW_TO_PACK",
    "INERT_MODULE_ROOTS", "InertObject", "MIXER_KEY", "PACK_FORMAT", "PACK_NAME", "PackCheck", "PathLike",
    "RANDOM_NOTE", "RestrictedUnpickler", "SEGM_FILE_NAME", "SEGM_PREFIX", "TRAIN_FORMAT", "TRAIN_FORMAT_PREFIX",
    "UnsafePickleError", "WEIGHTS_ENV", "WHERE_BACKBONE", "WHERE_SEGM", "WeightsError", "build_parser",
    "cache_dir_or_default", "check_backbone_state", "check_pack", "check_segm_state", "checked_weights",
    "compare_backbones", "conform_state", "content_sha256", "count_parameters", "default_cache_dir", "describe",
    "describe_checkpoint", "expected_backbone_shapes", "expected_segm_shapes", "file_sha256", "find_backbone_file",
    "is_safetensors", "is_training_checkpoint", "load_backbone_checkpoint", "load_files", "load_pack",
    "load_segm_checkpoint", "load_weights", "locate_weights", "main", "pack_section", "pack_tensors",
    "random_weights", "read_safetensors", "require_file", "restricted_pickle", "save_pack", "segm_state_of",
    "state_dict_of", "stored_weights", "strip_module_prefix", "torch_load_restricted", "training_checkpoint_format",
    "weights_from_training_checkpoint",
]
