"""The trained student alone, in a file: its weights and what rebuilds it, without teacher, optimiser or distillers.

An *exported student* (``reskd export --ckpt_path X.ckpt --out student.pt``, or ``ResKDModule.export_student``)
is a tensors-and-plain-values file (``torch.load(..., weights_only=True)`` reads it) holding:

* ``state_dict``: the student's weights (keys as in the student, no ``student.`` prefix);
* ``student``: its ``{class_path, init_args}`` as LightningCLI gave it (``init_args`` None when the student was
  passed as a built module: then :func:`load_student` needs the network, ``model=``);
* ``num_classes``, ``resolution`` (the short side of the student's view), the view options ``mean`` / ``std``
  (0..255 scale), ``interpolation``, ``antialias``;
* ``data``: the run's ``VideoDataModule`` settings (sampling, test crops and clips, decoding), from which
  ``reskd predict`` rebuilds the test pipeline, and ``frames``, the frames of one view (``num_segments x
  clip_len``); both None when exported without them;
* ``class_names`` when known, ``format`` / ``format_version`` and the ``library_version`` that wrote it.

:func:`load_student` rebuilds the network (as LightningCLI built it, ``pretrained`` off: the weights come from
the file) and returns an :class:`ExportedStudent`. :func:`export_program` writes a ``torch.export`` program of
the student (``.pt2``): the normalised view ``[N, 3, T, R, R]`` in, logits ``[N, K]`` out, with the metadata
as the archive's extra file ``reskd_student.json`` (:func:`load_program` reads both).
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

import torch
from pytorch_lightning.utilities import rank_zero_warn
from torch import Tensor, nn

from .files import atomic_write
from .models.recognizer import as_model_output
from .models.weights import load_checkpoint, load_state_dict_checked

#: The ``format`` value that marks an exported student, and the newest ``format_version`` this library reads.
FORMAT = "reskd-lightning/student"
FORMAT_VERSION = 1
#: The extra file of a program archive (``torch.export.save(extra_files=...)``) that holds the metadata.
PROGRAM_METADATA = "reskd_student.json"
#: A network given to ``ResKDModule``: a module, or a ``num_classes -> module`` factory (LightningCLI's partial).
NetworkSpec = nn.Module | Callable[[int], nn.Module]


class StudentSource(Protocol):
    """What an export reads of a module (``ResKDModule`` has all of it)."""

    student: nn.Module
    num_classes: int
    student_resolution: int
    view_options: Mapping[str, Any]  # mean, std, mode (the interpolation), antialias
    hparams: Mapping[str, Any]  # "student": the network's spec, when it was given as one


def library_version() -> str:
    """The installed reskd-lightning's version (``unknown`` when run from sources that were not installed)."""
    try:
        return importlib.metadata.version("reskd-lightning")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class ExportedStudent:
    """A student loaded from an exported file, in eval mode, with what scores a video with it.

    ``model`` takes the view ``[N, 3, frames, resolution, resolution]``, normalised with ``mean`` / ``std``
    (0..255 scale) and resized with ``interpolation`` / ``antialias`` (``view_options``, as
    ``ResKDModule.view_options``; :func:`reskd_lightning.views.attach_views` makes it from a uint8 clip).
    """

    model: nn.Module
    num_classes: int
    resolution: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str
    antialias: bool
    frames: int | None = None
    data: dict[str, Any] | None = None
    class_names: list[str] | None = None
    student: dict[str, Any] | None = None
    library_version: str = "unknown"
    format_version: int = FORMAT_VERSION
    source: str = ""

    @property
    def view_options(self) -> dict[str, Any]:
        """``mean``, ``std``, ``mode`` and ``antialias``: the keyword arguments of ``attach_views``."""
        return dict(mean=self.mean, std=self.std, mode=self.interpolation, antialias=self.antialias)

    def metadata(self) -> dict[str, Any]:
        """Everything but the weights, as plain values (what the file holds besides ``state_dict``)."""
        return {
            "format": FORMAT, "format_version": self.format_version, "library_version": self.library_version,
            "student": self.student, "num_classes": self.num_classes, "resolution": self.resolution,
            "mean": list(self.mean), "std": list(self.std), "interpolation": self.interpolation,
            "antialias": self.antialias, "frames": self.frames, "data": self.data, "class_names": self.class_names,
        }  # fmt: skip


# -- writing -----------------------------------------------------------------------------------------------------


def _is_plain(value: Any) -> bool:
    """Whether ``value`` is made of None, bools, numbers, strings, lists/tuples and str-keyed dicts only."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    return isinstance(value, dict) and all(isinstance(k, str) and _is_plain(v) for k, v in value.items())


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _partial_class(spec: functools.partial) -> type | None:
    """The class a partial builds with its keywords: ``partial(cls, **kw)``, or jsonargparse's ``partial(wrapper,
    instantiator, cls, **kw)`` (what LightningCLI and ``load_from_checkpoint`` pass for a ``class_path`` without
    ``num_classes``); None for any other partial."""
    if isinstance(spec.func, type):
        return spec.func if not spec.args else None
    last = spec.args[-1] if spec.args else None
    return last if isinstance(last, type) else None


def student_spec(spec: Any, student: nn.Module) -> dict[str, Any]:
    """The student's ``{class_path, init_args}`` from the module's ``student`` hyper-parameter: LightningCLI's dict,
    a class, or a partial of a class with keyword arguments. ``init_args`` is None when they are unknown (a
    built module, a lambda) or not plain values."""
    built_by = _partial_class(spec) if isinstance(spec, functools.partial) else None
    if isinstance(spec, Mapping) and "class_path" in spec:
        found = {k: v for k, v in spec.items()}
        found["init_args"] = dict(found.get("init_args") or {})
    elif isinstance(spec, type):
        found = {"class_path": _class_path(spec), "init_args": {}}
    elif built_by is not None:
        found = {"class_path": _class_path(built_by), "init_args": dict(spec.keywords)}
    else:
        return {"class_path": _class_path(type(student)), "init_args": None}
    if not _is_plain(found):
        rank_zero_warn(
            f"the student's init arguments ({found}) are not plain values and are not exported: load_student will "
            "need the network (model=...)"
        )
        return {"class_path": str(found["class_path"]), "init_args": None}
    return found


def frames_per_view(data: Mapping[str, Any] | None) -> int | None:
    """Frames of one test view of a ``VideoDataModule``: ``num_segments x clip_len`` (None when unknown)."""
    if not data or data.get("num_segments") is None or data.get("clip_len") is None:
        return None
    return int(data["num_segments"]) * int(data["clip_len"])


def export_student(
    module: StudentSource,
    path: str | os.PathLike,
    data: Mapping[str, Any] | None = None,
    class_names: Sequence[str] | None = None,
) -> Path:
    """Write ``module``'s student alone to ``path`` (atomically; see the module docstring for what it holds).

    ``data``: the run's ``VideoDataModule`` hyper-parameters (``reskd predict`` rebuilds the test pipeline from
    them; without, the export still loads but cannot predict); ``class_names``: the classes' names, if known.
    """
    data = {k: v for k, v in data.items() if not str(k).startswith("_")} if data else None
    if data is not None and not _is_plain(data):
        bad = sorted(k for k, v in data.items() if not _is_plain(v))
        raise ValueError(f"the data settings to export must be plain values; these are not: {bad}")
    options = module.view_options
    payload = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "library_version": library_version(),
        "state_dict": {k: v.detach().cpu() for k, v in module.student.state_dict().items()},
        "student": student_spec(module.hparams.get("student"), module.student),
        "num_classes": int(module.num_classes), "resolution": int(module.student_resolution),
        "mean": [float(m) for m in options["mean"]], "std": [float(s) for s in options["std"]],
        "interpolation": str(options["mode"]), "antialias": bool(options["antialias"]),
        "frames": frames_per_view(data), "data": data,
        "class_names": [str(c) for c in class_names] if class_names is not None else None,
    }  # fmt: skip
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


# -- reading -----------------------------------------------------------------------------------------------------


def is_program_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a ``torch.export`` archive (``.pt2``: a zip whose ``<root>/archive_format`` says pt2)."""
    if not Path(path).is_file() or not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/archive_format")]
        return bool(names) and archive.read(names[0]).strip() == b"pt2"


def refuse_program(path: str | os.PathLike, expected: str) -> None:
    """Raise, naming ``path``, when it is a ``torch.export`` program where ``expected`` was wanted."""
    if is_program_file(path):
        raise ValueError(
            f"{str(path)!r} is a torch.export program (a .pt2 archive), not {expected}: load a program with "
            "reskd_lightning.student_export.load_program (or torch.export.load)"
        )


def is_exported_student(checkpoint: Mapping[str, Any]) -> bool:
    """Whether a loaded file is an exported student (by its content: the ``format`` marker)."""
    return isinstance(checkpoint, Mapping) and checkpoint.get("format") == FORMAT


def _check_payload(checkpoint: Mapping[str, Any], source: str) -> None:
    """Raise, naming ``source`` and what was expected, unless ``checkpoint`` is an export this library reads."""
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"{source} is not an exported student: it holds a {type(checkpoint).__name__}, not a dict")
    if not is_exported_student(checkpoint):
        if "hyper_parameters" in checkpoint or "pytorch-lightning_version" in checkpoint:
            what = "a Lightning checkpoint (of a `reskd fit` run?)"
        elif set(checkpoint) == {"state_dict", "num_classes", "resolution"}:
            what = "a student's weights without how to rebuild it (an older reskd-lightning's export)"
        else:
            what = f"a file without format {FORMAT!r} (top-level keys: {sorted(map(str, checkpoint))[:10]})"
        raise ValueError(
            f"{source} is {what}, not an exported student: write one with "
            f"`reskd export --ckpt_path RUN.ckpt --out student.pt` (ResKDModule.export_student in Python)"
        )
    version = checkpoint.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{source} is an exported student of format_version {version!r} (written by reskd-lightning "
            f"{checkpoint.get('library_version', '?')}); this reskd-lightning ({library_version()}) reads "
            f"format_version <= {FORMAT_VERSION}: upgrade it"
        )
    required = ("state_dict", "student", "num_classes", "resolution", "mean", "std", "interpolation", "antialias")
    missing = [k for k in required if k not in checkpoint]
    if missing:
        raise ValueError(f"{source} is an exported student without {missing}: the file is incomplete")


class _StudentArgument:
    """A class whose one argument is typed as ``ResKDModule``'s ``student``, for ``instantiate_module``."""

    def __init__(self, student: NetworkSpec) -> None:
        self.student = student


def build_student(spec: Mapping[str, Any], num_classes: int, source: str) -> nn.Module:
    """The network of an export's ``student`` spec, built as ``load_from_checkpoint`` builds a ``reskd fit`` run's
    (Lightning's ``instantiate_module``: a ``num_classes -> network`` factory, called with ``num_classes``), with
    ``pretrained`` off."""
    from pytorch_lightning.cli import instantiate_module

    init_args = dict(spec["init_args"])
    if "pretrained" in init_args:
        init_args["pretrained"] = None  # the weights come from the file: nothing to download or read
    try:
        built = instantiate_module(_StudentArgument, {"student": {**spec, "init_args": init_args}}).student
    except Exception as err:  # noqa: BLE001 - jsonargparse's errors (import, unknown argument) say what is wrong
        raise ValueError(
            f"{source}: cannot build the student {spec['class_path']!r} from its init_args: {err}"
        ) from err
    return built if isinstance(built, nn.Module) else built(num_classes)


def student_from_payload(
    checkpoint: Mapping[str, Any], source: str, model: nn.Module | None = None
) -> ExportedStudent:
    """An :class:`ExportedStudent` from a loaded export (``source``: its file, for messages). ``model``: a network
    to load the weights into instead of building one (needed when the export does not know its init args)."""
    _check_payload(checkpoint, source)
    spec, num_classes = checkpoint["student"], int(checkpoint["num_classes"])
    if model is None:
        if not isinstance(spec, Mapping) or spec.get("init_args") is None:
            raise ValueError(
                f"{source} holds the student's weights but not its init arguments (it was given to ResKDModule as "
                f"a built {spec.get('class_path') if isinstance(spec, Mapping) else 'module'}): pass the network, "
                "built as in training, as load_student(path, model=...)"
            )
        model = build_student(spec, num_classes, source)
    load_state_dict_checked(model, checkpoint["state_dict"], source)
    data = checkpoint.get("data")
    names = checkpoint.get("class_names")
    return ExportedStudent(
        model=model.eval(), num_classes=num_classes, resolution=int(checkpoint["resolution"]),
        mean=tuple(checkpoint["mean"]), std=tuple(checkpoint["std"]),
        interpolation=str(checkpoint["interpolation"]), antialias=bool(checkpoint["antialias"]),
        frames=checkpoint.get("frames"), data=dict(data) if data is not None else None,
        class_names=list(names) if names is not None else None, student=dict(spec) if spec else None,
        library_version=str(checkpoint.get("library_version", "unknown")),
        format_version=int(checkpoint["format_version"]), source=source,
    )  # fmt: skip


def load_student(path: str | os.PathLike, model: nn.Module | None = None) -> ExportedStudent:
    """The student of an exported file (eval mode) and its metadata. A missing, empty or unreadable file, a fit
    checkpoint, a program or another file raises, naming the file and what was expected."""
    refuse_program(path, "an exported student (reskd export's .pt)")
    return student_from_payload(load_checkpoint(path), str(path), model)


# -- a torch.export program ---------------------------------------------------------------------------------------


class StudentLogits(nn.Module):
    """The student's logits alone (``torch.export`` programs return tensors, not ``ModelOutput``)."""

    def __init__(self, student: nn.Module) -> None:
        super().__init__()
        self.student = student

    def forward(self, clip: Tensor) -> Tensor:
        return as_model_output(self.student(clip)).logits


def export_program(
    student: ExportedStudent, path: str | os.PathLike, frames: int | None = None, dynamic_batch: bool = True
) -> Path:
    """Write a ``torch.export`` program of ``student`` to ``path`` (atomically): the normalised view
    ``[N, 3, frames, R, R]`` in (``frames``: the export's own by default), logits ``[N, K]`` out. With
    ``dynamic_batch``, ``N`` is free when the network allows it (else, with a warning, the program takes N = 1);
    ``metadata["input"]`` in the archive's ``reskd_student.json`` says which."""
    frames = frames if frames is not None else student.frames
    if frames is None or int(frames) < 1:
        raise ValueError(
            f"the frames of the student's view are unknown ({student.source or 'the export'} has no data settings): "
            "give frames (reskd export --frames T)"
        )
    wrapper = StudentLogits(student.model).eval()
    size = (3, int(frames), student.resolution, student.resolution)
    generator = torch.Generator().manual_seed(0)
    program = None
    if dynamic_batch:  # traced at N = 2: torch.export specialises a dimension whose example is 1
        example = torch.randn(2, *size, generator=generator)
        batch = {"clip": {0: torch.export.Dim("batch")}}
        try:
            program = torch.export.export(wrapper, (example,), dynamic_shapes=batch)
        except Exception as err:  # noqa: BLE001 - any failure: fall back to a fixed batch, and say why
            rank_zero_warn(f"the student could not be exported with a free batch size ({err}); the program takes N = 1")
    free_batch = program is not None
    if program is None:
        program = torch.export.export(wrapper, (torch.randn(1, *size, generator=generator),))
    metadata = {
        **student.metadata(),
        "input": {
            "shape": ["N" if free_batch else 1, *size], "dtype": "float32",
            "what": "the view: (uint8 clip - mean) / std, frames resized to the resolution",
        },
        "output": "logits [N, num_classes]",
    }  # fmt: skip
    text = json.dumps(metadata)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: torch.export.save warns about a path not ending in .pt2
            torch.export.save(program, f, extra_files={PROGRAM_METADATA: text})

    return atomic_write(path, write)


def load_program(path: str | os.PathLike) -> tuple[torch.export.ExportedProgram, dict[str, Any]]:
    """A program written by :func:`export_program` and its metadata (``program.module()(clip)`` runs it)."""
    source = str(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"program {source!r} does not exist")
    if not is_program_file(path):
        raise ValueError(
            f"{source!r} is not a torch.export program (.pt2 archive): write one with `reskd export --program`"
        )
    extra = {PROGRAM_METADATA: ""}
    program = torch.export.load(path, extra_files=extra)
    if not extra[PROGRAM_METADATA]:
        raise ValueError(
            f"{source!r} is a torch.export program without {PROGRAM_METADATA}: not one `reskd export` wrote"
        )
    return program, json.loads(extra[PROGRAM_METADATA])
