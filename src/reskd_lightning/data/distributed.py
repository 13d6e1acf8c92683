"""Which videos each process evaluates: every video once, on any number of processes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sized

from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from pytorch_lightning.utilities import rank_zero_warn

if TYPE_CHECKING:
    import pytorch_lightning as pl


def evaluation_sampler(dataset: Sized, trainer: "pl.Trainer | None") -> UnrepeatedDistributedSampler | None:
    """The sampler of an evaluation (validation, test, predict) loader on several processes: rank ``r`` of ``N``
    takes videos ``r, r + N, r + 2N, ...`` in list order, and no video is repeated, so ranks may run one batch
    fewer (Lightning's ``UnrepeatedDistributedSampler``; Lightning keeps a loader's ``DistributedSampler``).
    Metrics then match a one-process run's: torchmetrics states and the mAP's gathered videos hold every video
    once, as mmaction2's distributed test (its ``collect_results`` trims the sampler's repeats,
    mmaction/apis/test.py).

    Uneven batch counts are safe in evaluation: DDP syncs buffers on the first forward after a training step
    only, and logged values and metrics are synced once, at the epoch's end.

    None (a plain, unsharded loader) without a trainer or on one process. With fewer videos than processes, a
    rank would have no batch and the others would wait for it: None as well, with a warning; Lightning's
    ``DistributedSampler`` then repeats videos, which count twice in the metrics.
    """
    kwargs = trainer.distributed_sampler_kwargs if trainer is not None else None
    if not kwargs or kwargs.get("num_replicas", 1) <= 1:
        return None
    if len(dataset) < kwargs["num_replicas"]:
        rank_zero_warn(
            f"{len(dataset)} videos to evaluate on {kwargs['num_replicas']} processes: some process would have none, "
            "so Lightning's DistributedSampler repeats videos to give each one, and the repeats count in the metrics"
        )
        return None
    return UnrepeatedDistributedSampler(dataset, shuffle=False, **kwargs)
