"""Evaluation metrics: top-1/top-5 and mean class accuracy, the paper's mean average precision, multi-view
averaging.

Top-k accuracy (Mini-Kinetics, Something-Something V2, Kinetics-400) is torchmetrics' ``MulticlassAccuracy``
over all videos; beside it, as the paper's configs evaluate ``metrics=['top_k_accuracy',
'mean_class_accuracy']``, mmaction2's ``mean_class_accuracy``: the argmax prediction's accuracy per class, averaged
over the classes that occur among the labels or the predictions (a class only predicted counts 0, a class absent
from both is left out). ``MulticlassAccuracy(average="macro", top_k=1)`` computes exactly that (its macro mean
weighs out the classes with ``tp + fp + fn == 0`` and gives ``0/0`` the value 0), from per-class counts summed
over DDP ranks.

mAP (ActivityNet, FCVID) is the paper's: mmaction2's ``mean_average_precision``, which the paper's configs
evaluate with (``evaluation = dict(metrics=['mean_average_precision'])``). Per class, average precision over
the videos; classes without a positive video are dropped; the mean over the remaining classes.

torchmetrics' ``MultilabelAveragePrecision(average="macro")`` does not compute that: a class without positives
gets AP 0 (with a warning) and still counts in the mean, so on a validation set missing some class it reports
less than the paper's number. It handles tied scores as we do. :class:`MeanAveragePrecision` keeps its
states as torchmetrics lists reduced by concatenation, so DDP gathers every rank's videos before computing.

On N processes each metric must see each video once, as mmaction2's distributed test does (it drops the
repeats its sampler adds: ``ordered_results[:size]`` in ``collect_results``, mmaction/apis/test.py).
Lightning's default ``DistributedSampler`` repeats videos to give every rank as many;
``reskd_lightning.data.distributed.evaluation_sampler`` does not, and ``VideoDataModule`` uses it for its
validation, test and predict loaders.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy
from torchmetrics.utilities import dim_zero_cat

def average_precision_per_class(scores: Tensor, targets: Tensor) -> Tensor:
    """Average precision of each class over the videos: ``[K]``, NaN for a class with no positive.

    ``scores`` ``[N, K]``, ``targets`` multi-hot ``[N, K]`` (nonzero: positive). A class's AP is the mean,
    over its positive videos, of the precision at the rank of each positive when videos are sorted by score;
    videos with tied scores share one rank, the last of their group (the area under the step precision-recall
    curve, as mmaction2's and scikit-learn's ``average_precision_score``).
    """
    if scores.dim() != 2 or scores.shape != targets.shape:
        raise ValueError(
            f"scores and targets must both be [videos, classes], got {tuple(scores.shape)} and {tuple(targets.shape)}"
        )
    n = scores.shape[0]
    if n == 0:
        return torch.full((scores.shape[1],), float("nan"), dtype=torch.float64, device=scores.device)
    sorted_scores, order = scores.double().sort(dim=0, descending=True, stable=True)
    positive = (targets != 0).gather(0, order).double()
    hits = positive.cumsum(0)
    # The rank of each video's tie group: the position of the group's last member (the next smaller score).
    position = torch.arange(n, device=scores.device).unsqueeze(1).expand_as(sorted_scores)
    last_of_group = torch.ones_like(positive, dtype=torch.bool)
    last_of_group[:-1] = sorted_scores[1:] != sorted_scores[:-1]
    group_end = torch.where(last_of_group, position, torch.full_like(position, n))
    group_end = group_end.flip(0).cummin(0).values.flip(0)
    precision = hits.gather(0, group_end) / (group_end + 1).double()
    num_positive = positive.sum(0)
    ap = (precision * positive).sum(0) / num_positive
    return torch.where(num_positive > 0, ap, torch.full_like(ap, float("nan")))


def mean_average_precision(scores: Tensor, targets: Tensor) -> Tensor:
    """The paper's mAP: per-class AP over videos (:func:`average_precision_per_class`), classes without
    positives dropped, mean of the rest (NaN when no class has a positive). ``scores`` ``[N, K]``,
    ``targets`` multi-hot ``[N, K]``."""
    ap = average_precision_per_class(scores, targets)
    kept = ap[~ap.isnan()]
    return kept.mean() if kept.numel() else ap.new_tensor(float("nan"))


class MeanAveragePrecision(Metric):
    """:func:`mean_average_precision` over every video seen, on all DDP ranks (states gathered by
    concatenation), as the paper evaluates ActivityNet and FCVID.

    ``update(probs [N, K], targets [N, K] multi-hot, or [N] class ids)``. Used by ``ResKDModule`` for
    ``metric: mAP``. A video the loader's sampler repeats counts twice, as in any torchmetrics metric: under
    DDP, evaluate with :func:`~reskd_lightning.data.distributed.evaluation_sampler` (``VideoDataModule`` does), not Lightning's padding
    ``DistributedSampler``.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, num_classes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.num_classes = num_classes
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("targets", default=[], dist_reduce_fx="cat")

    def update(self, scores: Tensor, targets: Tensor) -> None:
        if targets.dim() == 1:
            targets = torch.nn.functional.one_hot(targets.long(), self.num_classes)
        if scores.dim() != 2 or scores.shape[1] != self.num_classes or targets.shape != scores.shape:
            raise ValueError(
                f"expected scores [N, {self.num_classes}] and multi-hot targets of the same shape, got "
                f"{tuple(scores.shape)} and {tuple(targets.shape)}"
            )
        self.scores.append(scores.detach().float())
        self.targets.append((targets != 0).to(torch.uint8))

    def compute(self) -> Tensor:
        # After a DDP sync each list state is one concatenated tensor.
        if isinstance(self.scores, list) and not self.scores:
            return torch.tensor(float("nan"), device=self.device)
        scores, targets = dim_zero_cat(self.scores), dim_zero_cat(self.targets)
        return mean_average_precision(scores, targets).float()


def evaluation_metrics(metric: str, num_classes: int) -> MetricCollection:
    """The metrics of an evaluation, each over all videos and synced over DDP ranks.

    ``mAP``: :class:`MeanAveragePrecision`. ``accuracy``: ``acc1`` and ``acc5`` (top-5 only with at least 5
    classes; micro average: the fraction of videos right) and ``mean_class_acc``, mmaction2's
    ``mean_class_accuracy`` (torchmetrics' macro average of top-1 accuracy; see the module's docstring).
    """
    if metric == "mAP":
        return MetricCollection({"mAP": MeanAveragePrecision(num_classes)})
    if metric != "accuracy":
        raise ValueError(f"metric must be 'accuracy' or 'mAP', got {metric!r}")
    metrics = {"acc1": MulticlassAccuracy(num_classes=num_classes, top_k=1, average="micro")}
    if num_classes >= 5:
        metrics["acc5"] = MulticlassAccuracy(num_classes=num_classes, top_k=5, average="micro")
    metrics["mean_class_acc"] = MulticlassAccuracy(num_classes=num_classes, top_k=1, average="macro")
    return MetricCollection(metrics)


def average_views(logits: Tensor, num_views: int) -> Tensor:
    """Multi-view testing: softmax of each view's logits ``[N * V, K]`` (views of a video adjacent),
    averaged over the ``V`` views of each video: ``[N, K]`` probabilities."""
    if num_views < 1 or logits.shape[0] % num_views:
        raise ValueError(f"{logits.shape[0]} rows of logits are not a whole number of videos of {num_views} views")
    return logits.float().softmax(-1).view(-1, num_views, logits.shape[-1]).mean(1)
