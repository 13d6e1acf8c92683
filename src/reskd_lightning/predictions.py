"""Per-video predictions: a CSV of every test (or predict) video, and predictions for a user's own videos.

``VideoPredictionWriter`` is a callback: it collects what ``ResKDModule.test_step`` / ``predict_step`` return
per video (``probs`` averaged over the test views, ``index``, ``label``), gathers it from every rank and
writes one CSV row per video. ``VideoPredictor`` rebuilds a trained student and its test pipeline from a
checkpoint or an exported student and scores video files one by one (``reskd predict --ckpt_path X.ckpt --video
a.mp4``).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.utilities import rank_zero_warn
from torch import Tensor

from .data.annotations import VideoRecord, load_class_names
from .data.dataset import UNREADABLE
from .files import atomic_write
from .models.weights import check_state_dict, load_checkpoint
from .student_export import ExportedStudent, export_student, is_exported_student, refuse_program, student_from_payload

if TYPE_CHECKING:
    from .data.datamodule import VideoDataModule
    from .module import ResKDModule

#: Separator of the class names in one CSV cell (names may hold spaces and commas: Kinetics, SSv2).
NAME_SEPARATOR = "|"


class VideoPredictionWriter(pl.Callback):
    """Write one CSV row per video of ``trainer.test`` / ``trainer.predict``: ``video`` (the path as in the
    list, relative to the data prefix), ``labels`` (class ids, space-separated; empty when unknown),
    ``top5_ids`` and ``top5_scores`` (the ``top_k`` most probable classes, the view-averaged softmax, most
    probable first) and, when the DataModule names its classes, ``top5_names`` (``|``-separated).

    Rows are sorted by dataset index, once per video: ``VideoDataModule`` gives each video to one rank
    (:func:`~reskd_lightning.data.distributed.evaluation_sampler`), and the copies a padding ``DistributedSampler`` adds
    to even out the ranks (another DataModule's loader) are dropped after every rank's rows are gathered.
    Rank 0 writes the file atomically (a temporary file renamed into place), to ``path``, or to
    ``<trainer.log_dir or default_root_dir>/predictions_<stage>.csv`` (``predictions_<stage>_<i>.csv`` for the
    ``i``-th of several dataloaders). ``reskd test`` and ``reskd predict`` add one when the config has none. The
    module's step must return a dict with ``probs`` ``[N, K]`` and preferably ``index`` ``[N]`` and ``label``
    (``[N]`` ids or ``[N, K]`` multi-hot).

    Args:
        path: CSV file to write; None: the default above.
        top_k: classes listed per video.

    Configure from LightningCLI::

        trainer:
          callbacks:
            - class_path: reskd_lightning.predictions.VideoPredictionWriter
              init_args:
                path: work_dirs/anet/predictions.csv   # omit: <log_dir>/predictions_test.csv
                top_k: 5
    """

    def __init__(self, path: str | None = None, top_k: int = 5) -> None:
        super().__init__()
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive number of classes, got {top_k!r}")
        if path is not None and not str(path).strip():
            raise ValueError(f"path must be a file name or None, got {path!r}")
        self.path = path
        self.top_k = top_k
        #: The file written for each stage ("test", "predict"), on every rank.
        self.written: dict[str, list[str]] = {}
        self._rows: dict[int, dict[str, list[Tensor]]] = {}
        self._seen = 0
        self._warned = False

    @property
    def state_key(self) -> str:
        return self._generate_state_key(path=self.path, top_k=self.top_k)

    # -- collecting ----------------------------------------------------------------------------

    def _reset(self) -> None:
        self._rows, self._seen = {}, 0

    def _collect(self, outputs: Any, dataloader_idx: int) -> None:
        if not isinstance(outputs, Mapping) or "probs" not in outputs:
            if not self._warned:
                rank_zero_warn(
                    "VideoPredictionWriter: the step returned no dict with 'probs' (per-video probabilities); "
                    f"got {type(outputs).__name__}: nothing is written for it"
                )
                self._warned = True
            return
        probs = outputs["probs"].detach().float().cpu()
        n, k = probs.shape
        if "index" in outputs:
            index = torch.as_tensor(outputs["index"]).reshape(-1).long().cpu()
        else:  # a user's DataModule without "index": rows in the order they came
            index = torch.arange(self._seen, self._seen + n)
        self._seen += n
        rows = self._rows.setdefault(dataloader_idx, {"index": [], "probs": [], "labels": []})
        rows["index"].append(index)
        rows["probs"].append(probs)
        if "label" in outputs:
            label = torch.as_tensor(outputs["label"]).cpu()
            hot = F.one_hot(label.long(), k) if label.dim() == 1 else label != 0
            rows["labels"].append(hot.to(torch.uint8))

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._reset()

    def on_predict_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._reset()

    def on_test_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        self._collect(outputs, dataloader_idx)

    def on_predict_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        self._collect(outputs, dataloader_idx)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer, pl_module, "test")

    def on_predict_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer, pl_module, "predict")

    # -- gathering and writing -----------------------------------------------------------------

    @staticmethod
    def _gather(trainer: pl.Trainer, pl_module: pl.LightningModule, parts: list[Tensor], empty: Tensor) -> Tensor:
        """This rank's rows, concatenated, then every rank's (ranks may hold different numbers of rows)."""
        local = torch.cat(parts) if parts else empty
        if trainer.world_size <= 1 or not torch.distributed.is_initialized():
            return local
        from torchmetrics.utilities.distributed import gather_all_tensors

        gathered = [t.cpu() for t in gather_all_tensors(local.to(pl_module.device)) if t.numel()]
        return torch.cat(gathered) if gathered else empty

    def _write(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Collective calls below (gather, log_dir's broadcast): every rank runs them, in the same order.
        loaders = trainer.test_dataloaders if stage == "test" else trainer.predict_dataloaders
        loaders = list(loaders.values()) if isinstance(loaders, Mapping) else loaders
        loaders = list(loaders) if isinstance(loaders, (list, tuple)) else [loaders]
        root = trainer.log_dir or trainer.default_root_dir
        self.written[stage] = []
        for idx, loader in enumerate(loaders):
            rows = self._rows.get(idx, {"index": [], "probs": [], "labels": []})
            index = self._gather(trainer, pl_module, rows["index"], torch.zeros(0, dtype=torch.long))
            probs = self._gather(trainer, pl_module, rows["probs"], torch.zeros(0, 0))
            labels = self._gather(trainer, pl_module, rows["labels"], torch.zeros(0, 0, dtype=torch.uint8))
            if len(labels) != len(index):
                labels = None  # some batches had no label: leave the column empty
            suffix = f"_{idx}" if len(loaders) > 1 else ""
            path = self.path if self.path is not None else os.path.join(root, f"predictions_{stage}{suffix}.csv")
            if self.path is not None and len(loaders) > 1:
                stem, ext = os.path.splitext(self.path)
                path = f"{stem}{suffix}{ext}"
            if trainer.is_global_zero:
                order = torch.argsort(index, stable=True)
                index, probs = index[order], probs[order]
                labels = labels[order] if labels is not None else None
                first = torch.ones(len(index), dtype=torch.bool)
                first[1:] = index[1:] != index[:-1]  # a padding DistributedSampler repeats videos
                index, probs = index[first], probs[first]
                labels = labels[first] if labels is not None else None
                names = _video_names(trainer, getattr(loader, "dataset", None), index.tolist())
                write_predictions_csv(path, names, probs, labels, self.top_k, _class_names(trainer, probs))
            self.written[stage].append(path)


def _class_names(trainer: pl.Trainer, probs: Tensor) -> list[str] | None:
    names = getattr(trainer.datamodule, "class_names", None) if trainer.datamodule is not None else None
    return list(names) if names is not None and len(names) == probs.shape[-1] else None


def _data_root(datamodule: Any, dataset: Any) -> Path | None:
    """The folder the test list's paths are relative to: the DataModule's test prefix, else the list's folder."""
    prefix = getattr(datamodule, "data_prefix", None)
    source = getattr(dataset, "source", "")
    given = prefix("test") if callable(prefix) else ""
    if given:
        return Path(given)
    if source:
        return Path(source) if Path(source).is_dir() else Path(source).parent
    return None


def _video_names(trainer: pl.Trainer, dataset: Any, indices: list[int]) -> list[str]:
    records = getattr(dataset, "records", None)
    if records is None:
        return [str(i) for i in indices]
    root = _data_root(trainer.datamodule, dataset)
    names = []
    for i in indices:
        path = Path(records[i].path)
        try:
            names.append(path.relative_to(root).as_posix() if root is not None else str(path))
        except ValueError:  # a path outside the prefix (absolute in the list): as written
            names.append(str(path))
    return names


def write_predictions_csv(
    path: str | os.PathLike,
    videos: Sequence[str],
    probs: Tensor,
    labels: Tensor | None = None,
    top_k: int = 5,
    class_names: Sequence[str] | None = None,
) -> Path:
    """Write the per-video CSV (``video, labels, top{k}_ids, top{k}_scores[, top{k}_names]``) atomically.

    ``probs`` ``[N, K]``; ``labels`` multi-hot ``[N, K]`` or None."""
    k = min(top_k, probs.shape[-1]) if probs.numel() else 0
    scores, ids = probs.topk(k, dim=-1) if k else (probs, probs.long())
    header = ["video", "labels", f"top{top_k}_ids", f"top{top_k}_scores"]
    if class_names is not None:
        header.append(f"top{top_k}_names")

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            for row, video in enumerate(videos):
                true = "" if labels is None else " ".join(str(c) for c in labels[row].nonzero().flatten().tolist())
                top = ids[row].tolist()
                line = [video, true, " ".join(map(str, top)), " ".join(f"{s:.6f}" for s in scores[row].tolist())]
                if class_names is not None:
                    line.append(NAME_SEPARATOR.join(class_names[c] for c in top))
                writer.writerow(line)

    return atomic_write(path, write)


# -- a user's own videos ---------------------------------------------------------------------------------


@dataclass
class VideoPrediction:
    """The student's view-averaged class probabilities for one video, and the most probable classes."""

    video: str
    probs: Tensor  # [K]
    top: list[tuple[int, str, float]]  # (class id, class name, probability), most probable first


class VideoPredictor:
    """A trained student and its test pipeline, rebuilt from a checkpoint or an exported student, scoring
    video files.

    From a ``reskd fit`` checkpoint, the networks come from its hyper-parameters (LightningCLI stores their class
    paths), the sampling, test transform and views from its DataModule's (``datamodule_hyper_parameters``: the
    test-mode frames, crops and clips of the run, at the student's resolution); the teacher is not rebuilt. An
    exported student (``reskd export``, :mod:`reskd_lightning.student_export`) holds the same: the student's
    spec and weights, its view options and the run's DataModule settings. Each video is decoded by the data
    layer (``VideoDataset.load``), its views scored by the student, their softmax averaged.

    Usage::

        predictor = VideoPredictor.from_checkpoint("runs/demo/student.ckpt")   # or an exported student.pt
        for cls, name, p in predictor.predict("my_video.mp4").top:
            print(name, p)
    """

    def __init__(
        self,
        module: "ResKDModule",
        data_hparams: Mapping[str, Any],
        class_names: Sequence[str] | None = None,
        top_k: int = 5,
        device: str | torch.device = "cpu",
    ) -> None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive number of classes, got {top_k!r}")
        num_classes = module.num_classes
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names given for a model of {num_classes} classes")
        self.module = module.to(device).eval()
        self.device = torch.device(device)
        self.data_hparams = dict(data_hparams)
        self.top_k = top_k
        self._datamodules: dict[str, "VideoDataModule"] = {}
        self.class_names = list(class_names) if class_names is not None else self._data_class_names()

    @classmethod
    def from_checkpoint(
        cls,
        ckpt_path: str | os.PathLike,
        classes_file: str | os.PathLike | None = None,
        num_clips: int | None = None,
        crop: str | None = None,
        top_k: int = 5,
        device: str | torch.device = "cpu",
    ) -> "VideoPredictor":
        """Rebuild from a ``reskd fit`` checkpoint or an exported student (told apart by content, not by the
        file's extension). ``classes_file``: class names, one a line (default: the export's or the data's, else
        class ids); ``num_clips`` / ``crop``: override the run's test clips and crops."""
        from .module import DISTILL_PREFIX, TEACHER_PREFIX, ResKDModule

        ckpt_path = Path(ckpt_path)
        refuse_program(ckpt_path, "a `reskd fit` checkpoint or an exported student")
        checkpoint = load_checkpoint(ckpt_path)  # a missing file raises FileNotFoundError naming it
        if is_exported_student(checkpoint):
            exported = student_from_payload(checkpoint, str(ckpt_path))
            return cls.from_exported(exported, classes_file, num_clips, crop, top_k, device)
        data_hparams = checkpoint.get("datamodule_hyper_parameters")
        if not data_hparams:
            raise ValueError(
                f"{ckpt_path} holds no DataModule hyper-parameters ('datamodule_hyper_parameters'): the test "
                "pipeline (frames, crops, normalisation) cannot be rebuilt; use a checkpoint of a `reskd fit` run "
                "or a run with reskd_lightning's VideoDataModule"
            )
        # No teacher: prediction runs the student alone, and teacher_ckpt may not exist on this machine.
        # strict=False: a checkpoint saved with its teacher has teacher.* keys this module does not hold; every
        # key it does hold is checked below, and only teacher.* and distill_modules.* keys may be extra.
        module = ResKDModule.load_from_checkpoint(
            ckpt_path, map_location="cpu", weights_only=False, strict=False, teacher=None, teacher_ckpt=None
        )
        check_state_dict(
            module.state_dict(), checkpoint["state_dict"], str(ckpt_path), "the student's ResKDModule",
            ignore_unexpected=(TEACHER_PREFIX, DISTILL_PREFIX),
        )  # fmt: skip
        data_hparams = _test_settings(data_hparams, num_clips, crop, module.num_classes)
        names = load_class_names(classes_file) if classes_file is not None else None
        return cls(module, data_hparams, class_names=names, top_k=top_k, device=device)

    @classmethod
    def from_exported(
        cls,
        exported: ExportedStudent,
        classes_file: str | os.PathLike | None = None,
        num_clips: int | None = None,
        crop: str | None = None,
        top_k: int = 5,
        device: str | torch.device = "cpu",
    ) -> "VideoPredictor":
        """Rebuild from an exported student (:func:`reskd_lightning.student_export.load_student`): it is scored
        by a ``ResKDModule`` around it with the export's resolution and view options, on the export's test
        pipeline; arguments as :meth:`from_checkpoint`."""
        from .module import ResKDModule

        if not exported.data:
            raise ValueError(
                f"{exported.source or 'the exported student'} holds no data settings ('data'): the test pipeline "
                "(frames, crops, clips) cannot be rebuilt; export from the run's checkpoint with `reskd export`, "
                "or pass data= (the VideoDataModule's hparams) to export_student"
            )
        options = exported.view_options
        module = ResKDModule(
            exported.model, num_classes=exported.num_classes, student_resolution=exported.resolution,
            mean=options["mean"], std=options["std"], interpolation=options["mode"], antialias=options["antialias"],
        )  # fmt: skip
        data_hparams = _test_settings(exported.data, num_clips, crop, exported.num_classes)
        names = load_class_names(classes_file) if classes_file is not None else exported.class_names
        return cls(module, data_hparams, class_names=names, top_k=top_k, device=device)

    def export_student(self, path: str | os.PathLike) -> Path:
        """Write this predictor's student and test pipeline (its DataModule settings, class names) as an
        exported student (:func:`reskd_lightning.student_export.export_student`): what ``reskd export`` writes."""
        return export_student(self.module, path, data=self.data_hparams, class_names=self.class_names)

    def _datamodule(self, list_format: str | None = None) -> "VideoDataModule":
        from .data.datamodule import VideoDataModule

        fmt = list_format or self.data_hparams.get("list_format") or ""
        if fmt not in self._datamodules:
            hp = dict(self.data_hparams, **({"list_format": list_format} if list_format else {}))
            self._datamodules[fmt] = VideoDataModule(**hp)
        return self._datamodules[fmt]

    def _data_class_names(self) -> list[str] | None:
        """The run's class names: the DataModule's (the demo's), else those its lists name (class folders,
        Kinetics CSVs, SSv2's labels.json) when the files are here; None when unknown."""
        dm = self._datamodule()
        if dm.class_names is not None:
            return list(dm.class_names)
        if dm.settings["list_format"] not in ("folder", "kinetics_csv", "sthv2"):
            return None  # mmaction2 lists hold ids only
        for split in ("train", "val", "test"):
            try:
                found = dm.load_records(split)
            except (OSError, ValueError):
                continue
            if found is not None and found[2] is not None and len(found[2]) == self.module.num_classes:
                return list(found[2])
        return None

    def class_name(self, class_id: int) -> str:
        """The name of a class, or its id when the names are unknown."""
        return self.class_names[class_id] if self.class_names is not None else str(class_id)

    @torch.inference_mode()
    def probabilities(self, video: str | os.PathLike) -> Tensor:
        """``[K]`` probabilities of one video (a file, or a frame folder for a rawframe run), softmax averaged
        over its test views. An unreadable video raises ``FileNotFoundError`` or ``VideoDecodeError``."""
        path = str(video)
        # A run trained on frame folders still scores video files (and the other way round is not possible).
        frames_run = self.data_hparams.get("list_format") == "rawframes"
        list_format = "videos" if frames_run and not Path(path).is_dir() else None
        dataset = self._datamodule(list_format).build_dataset("test", source="", records=[VideoRecord(path, 0)])
        try:
            sample = dataset.load(0)
        except UNREADABLE as e:
            # The data layer's message names the record; the cause names the file and what is wrong with it.
            raise type(e)(f"cannot read {path!r}: {e.__cause__ or e}") from e
        batch = {"video": sample["video"].unsqueeze(0).to(self.device)}
        return self.module.eval_probabilities(batch)[0].cpu()

    def predict(self, video: str | os.PathLike) -> VideoPrediction:
        """The video's probabilities and its ``top_k`` classes."""
        probs = self.probabilities(video)
        scores, ids = probs.topk(min(self.top_k, probs.numel()))
        top = [(int(c), self.class_name(int(c)), float(p)) for c, p in zip(ids, scores)]
        return VideoPrediction(str(video), probs, top)


def _test_settings(
    data_hparams: Mapping[str, Any], num_clips: int | None, crop: str | None, num_classes: int
) -> dict[str, Any]:
    """A run's DataModule settings for prediction: private keys dropped, test clips and crops overridden when
    given, the model's number of classes."""
    overrides = {k: v for k, v in (("num_test_clips", num_clips), ("test_crop", crop)) if v is not None}
    settings = {k: v for k, v in data_hparams.items() if not k.startswith("_")}
    settings.update(overrides, num_classes=num_classes)
    return settings


def read_video_list(file: str | os.PathLike) -> list[str]:
    """Video paths, one a line (blank and ``#`` lines skipped; an mmaction2 list's labels are ignored)."""
    videos = []
    for line in Path(file).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            videos.append(line if Path(line).exists() or len(line.split()) == 1 else line.split()[0])
    return videos

