"""Loading weights from local files, torchvision names and model-zoo URLs, with errors that name the keys.

One path serves every model: :func:`read_weights` reads a file and brings it into the model's layout
(mmaction2 checkpoints through the model's ``convert_mmaction_state_dict``, other foreign layouts through a
``convert`` function the model passes), then :func:`load_state_dict_checked` (a full checkpoint) or
:func:`load_pretrained` (an initialisation that may re-initialise the classifier) loads it. 2-D weights become
3-D ones with :func:`inflate_conv_weight` / :func:`inflate_state_dict`.

Every check of a checkpoint's keys against a module's is :func:`check_state_dict` (networks here,
``ResKDModule.load_state_dict``, the predictor's checkpoints), and every checkpoint file is read by
:func:`load_checkpoint`.
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

from .mmaction import is_mmaction_state_dict

StateDict = dict[str, Tensor]
Converter = Callable[[StateDict], StateDict]

_log = logging.getLogger(__name__)

#: Prefixes stripped from checkpoint keys, tried in order: our Lightning checkpoints keep the trained network
#: under ``student.`` (a teacher-stage run is a student-only run), DDP/EMA wrappers under ``module.``.
DEFAULT_PREFIXES: tuple[str, ...] = ("student.", "model.", "module.", "")

#: Where checkpoints keep the network's tensors: Lightning and mmaction2 under ``state_dict``, pytorchvideo's
#: model zoo (and PySlowFast) under ``model_state``.
STATE_KEYS: tuple[str, ...] = ("state_dict", "model_state")

#: File suffixes that make a ``pretrained`` string a path even before the file exists (so a typo in a path
#: reports a missing file, not an unknown weight name).
WEIGHT_FILE_SUFFIXES: frozenset[str] = frozenset({".pth", ".pt", ".ckpt", ".bin", ".pyth", ".pkl", ".tar"})


def is_url(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an http(s) address (a released checkpoint), not a local file."""
    return str(path).startswith(("http://", "https://"))


def load_checkpoint(path: str | os.PathLike) -> Mapping[str, Any]:
    """Read a checkpoint file on the CPU. Tensors-only files load with ``weights_only=True``.

    An http(s) address is downloaded once into torch's hub cache (``$TORCH_HOME/hub/checkpoints``), as
    torchvision's weights are, and read from there (tensors only). Lightning checkpoints may hold pickled
    hyper-parameters; those are loaded with ``weights_only=False``, so only load files you trust.
    """
    if is_url(path):
        return torch.hub.load_state_dict_from_url(str(path), map_location="cpu", weights_only=True)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if path.stat().st_size == 0:  # e.g. a save killed before it wrote anything
        raise ValueError(f"checkpoint {str(path)!r} is an empty file (0 bytes): a save that did not finish?")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass  # not tensors only: a checkpoint with pickled objects, or not a checkpoint at all
    except (RuntimeError, EOFError) as err:
        raise ValueError(f"checkpoint {str(path)!r} could not be read: {err}") from err
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any failure means the file is not a checkpoint
        raise ValueError(f"checkpoint {str(path)!r} could not be read: {type(err).__name__}: {err}") from err


def extract_state_dict(
    checkpoint: Mapping[str, Any], prefixes: Iterable[str] = DEFAULT_PREFIXES, source: str = "checkpoint"
) -> dict[str, Tensor]:
    """The network's tensors from a plain state dict or a Lightning/mmaction2/pytorchvideo checkpoint.

    The first prefix in ``prefixes`` that some key starts with is stripped; keys without it are dropped (e.g.
    a ResKD checkpoint's distiller adapters when the student is wanted).
    """
    state = next((checkpoint[k] for k in STATE_KEYS if isinstance(checkpoint.get(k), Mapping)), checkpoint)
    if not isinstance(state, Mapping) or not state:
        raise ValueError(f"{source} holds no state dict (top-level keys: {sorted(checkpoint)[:10]})")
    tensors = {k: v for k, v in state.items() if isinstance(v, Tensor)}
    for prefix in prefixes:
        if prefix and any(k.startswith(prefix) for k in tensors):
            return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    return tensors


#: Where every network of the library keeps its classifier (``ClsHead``): the part that depends on the classes.
CLASSIFIER_PREFIX = "cls_head."


class WeightsMismatchError(ValueError, RuntimeError):
    """Weights that do not fit a module: the message names ``source`` and the keys; the attributes list them.

    A ``ValueError`` (bad weights), and a ``RuntimeError`` as the error of ``torch.nn.Module.load_state_dict``,
    which ``ResKDModule.load_state_dict`` raises it in place of.

    Attributes:
        source: where the weights came from (a path, a weight name).
        missing: the module's keys the weights lack.
        unexpected: the weights' keys the module lacks.
        wrong_shapes: keys in both with different shapes, ``key -> (file shape, model shape)``.
    """

    def __init__(
        self,
        message: str,
        source: str,
        missing: list[str],
        unexpected: list[str],
        wrong_shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]],
    ) -> None:
        super().__init__(message)
        self.source = source
        self.missing = missing
        self.unexpected = unexpected
        self.wrong_shapes = wrong_shapes

    @property
    def keys(self) -> list[str]:
        """Every key that does not fit: missing, unexpected or wrongly shaped."""
        return self.missing + self.unexpected + list(self.wrong_shapes)


def _preview(keys: Iterable[str], limit: int = 8) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def check_state_dict(
    expected: Mapping[str, Any],
    state_dict: Mapping[str, Any],
    source: str,
    target: str,
    ignore_missing: Iterable[str] = (),
    ignore_unexpected: Iterable[str] = (),
    hint: str = "",
) -> None:
    """The one check of a checkpoint's keys: raise :class:`WeightsMismatchError` unless ``state_dict`` (from
    ``source``) has every key of ``expected`` (a module's state dict, the module called ``target`` in the
    message), no other key, and each key's shape.

    ``ignore_missing``/``ignore_unexpected`` are key prefixes that may legitimately be missing / be extra.
    ``hint`` ends the message (what may differ, how to fix it).
    """
    ignore_missing, ignore_unexpected = tuple(ignore_missing), tuple(ignore_unexpected)
    missing = [k for k in expected if k not in state_dict and not (ignore_missing and k.startswith(ignore_missing))]
    unexpected = [
        k for k in state_dict if k not in expected and not (ignore_unexpected and k.startswith(ignore_unexpected))
    ]
    shapes = {
        k: (tuple(state_dict[k].shape), tuple(own.shape))
        for k, own in expected.items()
        if k in state_dict and hasattr(state_dict[k], "shape") and state_dict[k].shape != own.shape
    }
    if not (missing or unexpected or shapes):
        return
    parts = [f"weights from {source} do not match {target}:"]
    if missing:
        parts.append(f"  missing keys ({len(missing)}): {_preview(missing)}")
    if unexpected:
        parts.append(f"  unexpected keys ({len(unexpected)}): {_preview(unexpected)}")
    if shapes:
        shown = [f"{k}: file {file} vs model {model}" for k, (file, model) in list(shapes.items())[:8]]
        parts.append(f"  wrong shapes ({len(shapes)}): {'; '.join(shown)}")
    if hint:
        parts.append(f"  ({hint})")
    raise WeightsMismatchError("\n".join(parts), source, missing, unexpected, shapes)


def load_state_dict_checked(
    module: nn.Module,
    state_dict: Mapping[str, Tensor],
    source: str,
    ignore_missing: Iterable[str] = (),
    ignore_unexpected: Iterable[str] = (),
    skip: Iterable[str] = (),
) -> None:
    """Load ``state_dict`` into ``module``; any missing, unexpected or wrongly shaped key raises
    (:func:`check_state_dict`).

    ``ignore_missing``/``ignore_unexpected`` are key prefixes that may legitimately differ. ``skip`` are key
    prefixes left out altogether: the file's keys under them are neither checked nor loaded and the module's
    stay as they are (for example a classifier kept as initialised for a new number of classes). The error, a
    :class:`WeightsMismatchError`, names ``source`` and the keys.
    """
    ignore_missing, skip = tuple(ignore_missing), tuple(skip)
    if skip:
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(skip)}
        ignore_missing += skip
    own = module.state_dict()
    check_state_dict(own, state_dict, source, type(module).__name__, ignore_missing, ignore_unexpected)
    module.load_state_dict({k: v for k, v in state_dict.items() if k in own}, strict=False)


def convert_mmaction(module: nn.Module, state: Mapping[str, Tensor], source: str) -> StateDict:
    """An mmaction2 state dict in ``module``'s layout, by the module's ``convert_mmaction_state_dict``."""
    converter = getattr(module, "convert_mmaction_state_dict", None)
    if converter is None:
        raise ValueError(
            f"{source} is an mmaction2 checkpoint but {type(module).__name__} has no mmaction2 key mapping "
            "(no `convert_mmaction_state_dict` method)"
        )
    return converter(dict(state))


def adapt_state_dict(
    module: nn.Module, state: Mapping[str, Tensor], source: str, convert: Converter | None = None
) -> StateDict:
    """``state`` in ``module``'s layout: mmaction2 files converted by the module, others by ``convert``."""
    if is_mmaction_state_dict(state):
        return convert_mmaction(module, state, source)
    return convert(dict(state)) if convert is not None else dict(state)


def read_weights(
    module: nn.Module,
    path: str | os.PathLike,
    prefixes: Iterable[str] = DEFAULT_PREFIXES,
    convert: Converter | None = None,
) -> StateDict:
    """Read a local file and bring its tensors into ``module``'s layout (see :func:`adapt_state_dict`)."""
    state = extract_state_dict(load_checkpoint(path), prefixes, source=str(path))
    return adapt_state_dict(module, state, str(path), convert)


def load_weights(
    module: nn.Module,
    path: str | os.PathLike,
    prefixes: Iterable[str] = DEFAULT_PREFIXES,
    ignore_missing: Iterable[str] = (),
    ignore_unexpected: Iterable[str] = (),
    convert: Converter | None = None,
    skip: Iterable[str] = (),
) -> None:
    """Load a local file into ``module``, checking every key.

    The file may be a plain state dict, a Lightning checkpoint, or an mmaction2 checkpoint (converted by the
    module's ``convert_mmaction_state_dict``; a module without one is refused). ``convert`` maps any other
    foreign layout onto the module's names. The classifier must match, unless ``skip`` (or ``ignore_*``) names
    it (see :func:`load_state_dict_checked`).
    """
    state = read_weights(module, path, prefixes, convert)
    load_state_dict_checked(module, state, str(path), ignore_missing, ignore_unexpected, skip)


def load_pretrained(
    module: nn.Module, state: Mapping[str, Tensor], source: str, head_prefix: str = CLASSIFIER_PREFIX
) -> None:
    """Initialise ``module`` from pretrained weights already in its layout.

    Every key outside ``head_prefix`` must match. The classifier is taken when the file has one of the same
    shapes (the same classes) and is left as initialised otherwise (ImageNet weights, another dataset).
    """
    own = module.state_dict()
    head = {k: v for k, v in state.items() if k.startswith(head_prefix)}
    own_head = {k: v for k, v in own.items() if k.startswith(head_prefix)}
    same_head = bool(head) and head.keys() == own_head.keys() and all(
        v.shape == own_head[k].shape for k, v in head.items()
    )
    if not same_head:
        if head:
            shapes = {k: tuple(v.shape) for k, v in own_head.items()}
            _log.info("%s: the classifier in %s does not fit %s; it stays as initialised", type(module).__name__,
                      source, shapes)
    load_state_dict_checked(module, state, source, skip=() if same_head else (head_prefix,))


def remap_keys(state: Mapping[str, Tensor], prefixes: Mapping[str, str | None]) -> StateDict:
    """Rename key prefixes (the longest matching one wins); a prefix mapped to ``None`` drops its keys.

    Keys that match no prefix are kept, so a checked load reports them if the model has no such key.
    """
    order = sorted(prefixes, key=len, reverse=True)
    out = {}
    for key, value in state.items():
        old = next((p for p in order if key.startswith(p)), None)
        if old is not None:
            new = prefixes[old]
            if new is None:
                continue
            key = new + key[len(old) :]
        out[key] = value
    return out


def is_weights_file(pretrained: str | os.PathLike) -> bool:
    """Whether a ``pretrained`` value names a local file rather than a weight name such as ``IMAGENET1K_V1``."""
    text = str(pretrained)
    return Path(text).exists() or Path(text).suffix in WEIGHT_FILE_SUFFIXES or "/" in text or os.sep in text


def inflate_conv_weight(w2d: Tensor, time: int, mode: str = "average") -> Tensor:
    """A 2-D convolution kernel ``[O, I, kh, kw]`` as a 3-D one ``[O, I, time, kh, kw]``.

    ``"average"`` repeats the kernel over time and divides it by ``time`` (I3D's inflation, mmaction2's
    ``inflate_weights``): on a clip of identical frames the 3-D convolution gives the 2-D response, except
    where zero temporal padding is in reach. ``"center"`` puts the kernel at the middle tap and zeros
    elsewhere: the 3-D network starts as the 2-D network applied to every frame.
    """
    if w2d.dim() == 5 and w2d.shape[2] == 1:
        w2d = w2d[:, :, 0]
    if w2d.dim() != 4:
        raise ValueError(f"expected a 2-D convolution weight [O, I, kh, kw], got shape {tuple(w2d.shape)}")
    if time < 1:
        raise ValueError(f"temporal kernel size must be positive, got {time}")
    if mode == "average":
        return w2d.unsqueeze(2).repeat(1, 1, time, 1, 1) / time
    if mode == "center":
        out = w2d.new_zeros(w2d.shape[0], w2d.shape[1], time, *w2d.shape[2:])
        out[:, :, time // 2] = w2d
        return out
    raise ValueError(f"unknown inflation mode {mode!r}; choose 'average' or 'center'")


def inflate_state_dict(
    state: Mapping[str, Tensor], target: Mapping[str, Tensor], mode: str = "average"
) -> StateDict:
    """Inflate every 2-D kernel of ``state`` whose key is a 3-D kernel in ``target`` (a model's state dict).

    Other tensors (BatchNorm statistics and affine parameters, 3-D kernels already) are copied as they are.
    """
    out = {}
    for key, value in state.items():
        goal = target.get(key)
        if goal is not None and value.dim() == 4 and goal.dim() == 5:
            value = inflate_conv_weight(value, goal.shape[2], mode)
        out[key] = value
    return out


def torchvision_state_dict(weights_enum: str) -> dict[str, Tensor]:
    """Download (or read from torch's cache) torchvision weights, e.g. ``"ResNet50_Weights.IMAGENET1K_V2"``.

    Without a network, the error says which file to place where.
    """
    import torchvision

    try:
        weights = torchvision.models.get_weight(weights_enum)
    except (ValueError, KeyError, AttributeError) as err:
        raise ValueError(f"unknown torchvision weights {weights_enum!r}: {err}") from err
    try:
        return weights.get_state_dict(progress=False, check_hash=False)
    except OSError as err:  # URLError is an OSError
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        raise RuntimeError(
            f"could not download {weights_enum} from {weights.url} ({err}). Without a network, download that "
            f"file elsewhere and place it at {cache}, or pass a local file path as `pretrained`."
        ) from err


def url_state_dict(url: str, what: str) -> StateDict:
    """Download (or read from torch's hub cache) a checkpoint of a model zoo, e.g. pytorchvideo's Kinetics models.

    ``what`` names the weights in messages. Without a network, the error says which URL to fetch and where
    to place the file.
    """
    cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
    if not cache.is_file():
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(cache), progress=False)
        except OSError as err:  # URLError, timeouts and refused connections are OSErrors
            raise RuntimeError(
                f"could not download {what} from {url} ({err}). Without a network, download that file "
                f"elsewhere and place it at {cache}, or pass a local file path as `pretrained`."
            ) from err
    return extract_state_dict(load_checkpoint(cache), source=str(cache))


def pytorchvideo_zoo_state_dict(hub_module: str, name: str) -> tuple[StateDict, str]:
    """Kinetics weights of pytorchvideo's model zoo and their URL, e.g. ``("x3d", "x3d_s")``.

    ``hub_module`` is the ``pytorchvideo.models.hub`` module listing the model's ``checkpoint_paths``
    (``resnet``, ``x3d``, ``slowfast``); downloaded through :func:`url_state_dict`.
    """
    import importlib

    paths = importlib.import_module(f"pytorchvideo.models.hub.{hub_module}").checkpoint_paths
    url = paths[name]
    return url_state_dict(url, f"pytorchvideo's {name}"), url
