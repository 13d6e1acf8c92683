"""Evaluation as a user meets it: the paper's mAP and mean class accuracy, per-video prediction CSVs from
`reskd test` / `reskd predict` (one and two processes), and `reskd predict --video` on their own videos."""

from __future__ import annotations

import csv
import logging
import re
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from demo_configs import write_config
from torchmetrics.classification import MultilabelAveragePrecision

from reskd_lightning import ResKDModule, VideoDataModule
from reskd_lightning.cli import cli_main, main
from reskd_lightning.data import DEMO_CLASSES
from reskd_lightning.data.distributed import evaluation_sampler
from reskd_lightning.metrics import MeanAveragePrecision, evaluation_metrics, mean_average_precision
from reskd_lightning.models import TSN
from reskd_lightning.predictions import VideoPredictionWriter

# 6 videos x 4 classes. Class 0 has a three-way tie at 0.7 holding a positive, class 2 a tie without one,
# class 3 no positive video at all.
SCORES = torch.tensor(
    [
        [0.9, 0.1, 0.5, 0.2],
        [0.7, 0.8, 0.5, 0.1],
        [0.7, 0.3, 0.4, 0.3],
        [0.2, 0.6, 0.9, 0.4],
        [0.7, 0.2, 0.1, 0.5],
        [0.1, 0.5, 0.3, 0.6],
    ]
)
TARGETS = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 1, 0], [0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0]])


def numpy_map(scores: np.ndarray, targets: np.ndarray) -> float:
    """mmaction2's mean_average_precision (the paper's configs): per class over videos, tied scores one
    threshold, classes without positives dropped, then the mean."""
    aps = []
    for s, y in zip(scores.T, targets.T):
        if y.sum() == 0:
            continue
        order = np.argsort(-s, kind="mergesort")
        s, y = s[order], y[order]
        ends = np.r_[np.where(np.diff(s))[0], len(s) - 1]  # last video of each distinct score
        hits = np.cumsum(y)[ends]
        precision, recall = hits / (ends + 1), hits / hits[-1]
        aps.append(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return float(np.mean(aps))


def test_map_matches_numpy_on_fixed_scores_with_ties_and_a_class_without_positives() -> None:
    # By hand: class 0 (1 + 2/4 + 3/6) / 3, class 1 (1 + 2/5) / 2, class 2 (1 + 2/4) / 2, class 3 dropped.
    expected = (2 / 3 + 0.7 + 0.75) / 3
    assert numpy_map(SCORES.numpy(), TARGETS.numpy()) == pytest.approx(expected)
    assert float(mean_average_precision(SCORES, TARGETS)) == pytest.approx(expected, abs=1e-12)

    metric = MeanAveragePrecision(num_classes=4)
    metric.update(SCORES[:4], TARGETS[:4])  # two batches, as in an evaluation loop
    metric.update(SCORES[4:], TARGETS[4:])
    assert float(metric.compute()) == pytest.approx(expected, abs=1e-6)

    # Why not torchmetrics' macro AP: the class without positives counts as 0 in its mean.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        macro = MultilabelAveragePrecision(num_labels=4, average="macro")(SCORES, TARGETS)
    assert float(macro) == pytest.approx((2 / 3 + 0.7 + 0.75 + 0) / 4, abs=1e-6)


def test_map_metric_takes_class_ids_as_targets() -> None:
    ids = torch.tensor([0, 1, 2, 2, 1, 0])
    metric = MeanAveragePrecision(num_classes=4)
    metric.update(SCORES, ids)
    hot = torch.nn.functional.one_hot(ids, 4)
    assert float(metric.compute()) == pytest.approx(numpy_map(SCORES.numpy(), hot.numpy()), abs=1e-6)


# ------------------------------------------------------------------------------- mean class accuracy
def numpy_mean_class_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """mmaction2's mean_class_accuracy, from its definition (mmaction/core/evaluation/accuracy.py, lines 69-88,
    with confusion_matrix lines 41-53): the prediction is the argmax (the first of tied maxima); the classes
    are those among the labels or the predictions; each one's accuracy is its videos predicted right over its
    videos, 0 for a class with no video (only predicted); the mean over those classes."""
    predicted = scores.argmax(1)
    classes = sorted(set(predicted.tolist()) | set(labels.tolist()))
    accuracies = []
    for c in classes:
        videos = labels == c
        accuracies.append((predicted[videos] == c).sum() / videos.sum() if videos.any() else 0.0)
    return float(np.mean(accuracies))


def test_mean_class_accuracy_is_mmaction2s() -> None:
    # 7 videos, 6 classes. Labels 0 0 0 1 1 2 2; predicted 0 0 3 1 0 2 2 (the last a tie of classes 2 and 4:
    # the first maximum, 2). By hand: class 0: 2/3, class 1: 1/2, class 2: 2/2, class 3 predicted only: 0;
    # classes 4 (lost the tie) and 5 neither labelled nor predicted: left out. Mean: (2/3 + 1/2 + 1 + 0) / 4.
    probs = torch.tensor(
        [
            [0.5, 0.1, 0.1, 0.1, 0.1, 0.1],
            [0.4, 0.3, 0.1, 0.1, 0.05, 0.05],
            [0.2, 0.1, 0.1, 0.5, 0.05, 0.05],
            [0.1, 0.6, 0.1, 0.1, 0.05, 0.05],
            [0.3, 0.2, 0.2, 0.1, 0.1, 0.1],
            [0.1, 0.1, 0.7, 0.05, 0.05, 0.0],
            [0.1, 0.0, 0.4, 0.1, 0.4, 0.0],
        ]
    )
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    expected = 13 / 24
    assert numpy_mean_class_accuracy(probs.numpy(), labels.numpy()) == pytest.approx(expected, abs=1e-12)

    metrics = evaluation_metrics("accuracy", num_classes=6)
    metrics.update(probs[:3], labels[:3])  # in batches, as in an evaluation loop; on N ranks the counts add up
    metrics.update(probs[3:], labels[3:])
    values = {k: float(v) for k, v in metrics.compute().items()}
    assert set(values) == {"acc1", "acc5", "mean_class_acc"}
    assert values["mean_class_acc"] == pytest.approx(expected, abs=1e-7)
    assert values["acc1"] == pytest.approx(5 / 7, abs=1e-7)  # not the per-class mean
    # Neither the mean over all 6 classes nor over the 3 labelled ones.
    assert values["mean_class_acc"] not in (pytest.approx(13 / 36), pytest.approx(13 / 18))

    # Random sets with ties (scores on a coarse grid) and classes missing from labels or predictions.
    generator = torch.Generator().manual_seed(0)
    for n in [1, 2, 3, 5, 8, 13, 30]:
        scores = torch.randint(0, 4, (n, 6), generator=generator).float() / 4
        ids = torch.randint(0, 6, (n,), generator=generator)
        metric = evaluation_metrics("accuracy", num_classes=6)["mean_class_acc"]
        assert float(metric(scores, ids)) == pytest.approx(numpy_mean_class_accuracy(scores.numpy(), ids.numpy()))


def fake_trainer(world_size: int, rank: int) -> Any:
    return SimpleNamespace(distributed_sampler_kwargs={"num_replicas": world_size, "rank": rank})


def test_evaluation_sampler_gives_each_video_to_one_rank() -> None:
    # Rank r of N: videos r, r + N, ... (the rank-strided split of mmaction2's DistributedSampler,
    # mmaction/datasets/samplers/distributed_sampler.py line 42), without the repeats it pads with (line 38).
    videos = list(range(7))
    assert [list(evaluation_sampler(videos, fake_trainer(3, r))) for r in range(3)] == [[0, 3, 6], [1, 4], [2, 5]]
    # A plain loader: no trainer, or one process.
    assert evaluation_sampler(videos, None) is None
    assert evaluation_sampler(videos, pl.Trainer(accelerator="cpu", devices=1, logger=False)) is None
    # Fewer videos than processes: a rank without a batch would hang the others; Lightning's padding sampler.
    with pytest.warns(UserWarning, match="2 videos to evaluate on 4 processes"):
        assert evaluation_sampler(videos[:2], fake_trainer(4, 0)) is None


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def list_lines(path: Path) -> list[tuple[str, list[int]]]:
    return [(line.split()[0], [int(x) for x in line.split()[1:]]) for line in path.read_text().splitlines()]


# ------------------------------------------------------------------------------- two processes (gloo)
class SaveRankOutputs(pl.Callback):
    """Each rank saves what its test steps returned, for the parent process to recompute the metric."""

    def __init__(self, folder: str) -> None:
        self.folder, self.outputs = folder, []

    def on_test_batch_end(self, trainer: pl.Trainer, pl_module: Any, outputs: Any, *args: Any) -> None:
        self.outputs.append({k: v.cpu() for k, v in outputs.items()})

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        torch.save(self.outputs, Path(self.folder) / f"rank{trainer.global_rank}.pt")


def test_ddp_map_is_synced_and_csv_has_each_video_once(demo_root: Path, tmp_path: Path) -> None:
    # 7 multi-label videos on 2 ranks: 4 and 3, none repeated (mmaction2's distributed test drops its sampler's
    # repeats: mmaction/apis/test.py line 156, `ordered_results = ordered_results[:size]`), so test/mAP is the
    # one-process mAP exactly.
    videos = [line.split()[0] for line in (demo_root / "val.txt").read_text().splitlines()][:7]
    labels = [[0], [0, 2], [1], [1, 3], [2], [2, 0], [3]]
    test_list = tmp_path / "multi.txt"
    test_list.write_text("".join(f"{v} {' '.join(map(str, ls))}\n" for v, ls in zip(videos, labels)))
    dm = VideoDataModule(
        test_list=str(test_list), data_prefix=str(demo_root), num_classes=4, metric="mAP", num_segments=2,
        short_side=64, crop_size=64, resolutions=[32], batch_size=2, num_workers=0,
    )  # fmt: skip
    module = ResKDModule(student=TSN(4, backbone="resnet18"), num_classes=4, student_resolution=32, metric="mAP")
    csv_path = tmp_path / "out" / "predictions.csv"
    one = pl.Trainer(
        accelerator="cpu", devices=1, default_root_dir=str(tmp_path), logger=False, enable_progress_bar=False,
        enable_model_summary=False,
    ).test(module, datamodule=dm)  # fmt: skip
    trainer = pl.Trainer(
        accelerator="cpu", devices=2, strategy="ddp_spawn", default_root_dir=str(tmp_path), logger=False,
        enable_progress_bar=False, enable_model_summary=False,
        callbacks=[VideoPredictionWriter(path=str(csv_path)), SaveRankOutputs(str(tmp_path))],
    )  # fmt: skip
    results = trainer.test(module, datamodule=dm)

    # test/mAP is the paper's mAP over both ranks' videos, not rank 0's alone.
    outputs = torch.load(tmp_path / "rank0.pt") + torch.load(tmp_path / "rank1.pt")
    probs, targets = torch.cat([o["probs"] for o in outputs]), torch.cat([o["label"] for o in outputs])
    assert sorted(torch.cat([o["index"] for o in outputs]).tolist()) == list(range(7))
    assert results[0]["test/mAP"] == one[0]["test/mAP"]
    assert results[0]["test/mAP"] == pytest.approx(float(mean_average_precision(probs, targets)), abs=1e-5)
    rank0 = torch.load(tmp_path / "rank0.pt")
    rank0_only = mean_average_precision(torch.cat([o["probs"] for o in rank0]), torch.cat([o["label"] for o in rank0]))
    assert results[0]["test/mAP"] != pytest.approx(float(rank0_only), abs=1e-5)

    # The CSV: both ranks' rows, each video once, in list order, with all its labels.
    rows = read_csv(csv_path)
    assert [r["video"] for r in rows] == videos
    assert [sorted(int(c) for c in r["labels"].split()) for r in rows] == [sorted(ls) for ls in labels]
    by_index = {int(i): p for o in outputs for i, p in zip(o["index"], o["probs"])}
    for i, row in enumerate(rows):
        ids = [int(c) for c in row["top5_ids"].split()]
        assert ids == by_index[i].argsort(descending=True).tolist()
    assert "top5_names" not in rows[0]  # a plain list names no classes

    # predict: no padding, the ranks hold 4 and 3 videos; the same rows come back.
    trainer.predict(module, datamodule=dm, return_predictions=False)
    predicted = read_csv(csv_path)
    assert [(r["video"], r["labels"], r["top5_ids"]) for r in predicted] == [
        (r["video"], r["labels"], r["top5_ids"]) for r in rows
    ]


# ------------------------------------------------------------------------------------------ the CLI
@pytest.fixture(scope="module")
def fitted(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 2-step `reskd fit` of a tiny TSN-R18 on the demo videos: (config, checkpoint)."""
    root = tmp_path_factory.mktemp("fitted")
    config = write_config(root / "config.yaml", demo_root, root, "teacher")
    cli_main(["fit", "--config", str(config)])
    return config, root / "teacher.ckpt"


def printed_path(text: str, what: str) -> Path:
    found = re.findall(r"per-video predictions: (\S+)", text)
    assert found, f"`reskd {what}` printed no predictions path:\n{text}"
    return Path(found[-1])


def test_reskd_test_and_predict_write_a_row_per_test_video(
    fitted: tuple[Path, Path], demo_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config, ckpt = fitted
    caplog.set_level(logging.INFO)
    cli = cli_main(["test", "--config", str(config), "--ckpt_path", str(ckpt)])
    rows = read_csv(printed_path(caplog.text, "test"))

    expected = list_lines(demo_root / "val.txt")  # the demo's test list is its val list
    assert [r["video"] for r in rows] == [video for video, _ in expected]
    assert [[int(c) for c in r["labels"].split()] for r in rows] == [labels for _, labels in expected]
    for row in rows:
        ids, scores = [int(c) for c in row["top5_ids"].split()], [float(s) for s in row["top5_scores"].split()]
        assert sorted(ids) == [0, 1, 2, 3]  # 4 classes: the top 5 are all of them, most probable first
        assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1.0, abs=1e-5)
        assert row["top5_names"].split("|") == [DEMO_CLASSES[c] for c in ids]
    top1_right = np.mean([int(r["top5_ids"].split()[0]) == int(r["labels"]) for r in rows])
    assert float(cli.trainer.callback_metrics["test/acc1"]) == pytest.approx(top1_right)

    caplog.clear()
    cli_main(["predict", "--config", str(config), "--ckpt_path", str(ckpt)])
    predicted = read_csv(printed_path(caplog.text, "predict"))
    assert predicted[0]["video"] != "" and [r["top5_ids"] for r in predicted] == [r["top5_ids"] for r in rows]


def parse_printed(out: str) -> dict[str, list[str]]:
    """`reskd predict --video` output: {video: [class names, most probable first]}."""
    found: dict[str, list[str]] = {}
    for line in out.splitlines():
        if not line.startswith(" "):
            video = line
            found[video] = []
        else:
            found[video].append(line.split()[1])
    return found


def test_reskd_predict_prints_class_names_of_users_videos(
    fitted: tuple[Path, Path], demo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _, ckpt = fitted
    videos = [str(demo_root / video) for video, _ in list_lines(demo_root / "val.txt")[:2]]
    main(["predict", "--ckpt_path", str(ckpt), "--video", *videos, "--top-k", "3"])
    printed = parse_printed(capsys.readouterr().out)
    assert list(printed) == videos
    assert all(len(names) == 3 and set(names) <= set(DEMO_CLASSES) for names in printed.values())

    # Or a file of paths, one a line.
    (tmp_path / "list.txt").write_text(videos[1] + "\n")
    main(["predict", "--ckpt_path", str(ckpt), "--list", str(tmp_path / "list.txt"), "--top-k", "3"])
    assert parse_printed(capsys.readouterr().out) == {videos[1]: printed[videos[1]]}


def test_reskd_predict_names_a_missing_video_and_goes_on(
    fitted: tuple[Path, Path], demo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _, ckpt = fitted
    video = str(demo_root / list_lines(demo_root / "val.txt")[0][0])
    missing = str(tmp_path / "gone.mp4")
    with pytest.raises(SystemExit, match="1 of 2 videos could not be read"):
        main(["predict", "--ckpt_path", str(ckpt), "--video", missing, video])
    captured = capsys.readouterr()
    assert missing in captured.err and "does not exist" in captured.err
    assert list(parse_printed(captured.out)) == [video]
