"""Which videos each process reads: in training, its share of a resumable shuffled order; in evaluation,
every video once, on any number of processes."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Sized

import torch
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from pytorch_lightning.utilities import rank_zero_warn

from reskd_lightning.data.resumable import ResumableSampler

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
    num_replicas, rank = process_share(trainer)
    if num_replicas <= 1:
        return None
    if len(dataset) < num_replicas:
        rank_zero_warn(
            f"{len(dataset)} videos to evaluate on {num_replicas} processes: some process would have none, "
            "so Lightning's DistributedSampler repeats videos to give each one, and the repeats count in the metrics"
        )
        return None
    return UnrepeatedDistributedSampler(dataset, shuffle=False, num_replicas=num_replicas, rank=rank)


def process_share(trainer: "pl.Trainer | None") -> tuple[int, int]:
    """``(world size, global rank)`` of this process for its data share: ``(1, 0)`` without a trainer or on one
    process."""
    kwargs = trainer.distributed_sampler_kwargs if trainer is not None else None
    if not kwargs:
        return 1, 0
    return int(kwargs.get("num_replicas", 1)), int(kwargs.get("rank", 0))


def training_seed(trainer: "pl.Trainer | None") -> int:
    """The seed of the training order: ``seed_everything``'s (``PL_GLOBAL_SEED``, as Lightning seeds its own
    ``DistributedSampler``); without one, a draw from torch's RNG, rank 0's on every process."""
    env = os.environ.get("PL_GLOBAL_SEED")
    if env is not None:
        try:
            return int(env)
        except ValueError:
            raise ValueError(f"PL_GLOBAL_SEED must be an integer (seed_everything's), got {env!r}") from None
    seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
    if trainer is not None and process_share(trainer)[0] > 1:
        seed = int(trainer.strategy.broadcast(seed, src=0))  # every rank must shuffle alike
    return seed


def training_sampler(dataset: Sized, trainer: "pl.Trainer | None") -> ResumableSampler:
    """The training sampler: this process' share (``process_share``) of an order seeded by ``training_seed``,
    which a checkpoint can resume mid-epoch (:class:`~reskd_lightning.data.resumable.ResumableSampler`)."""
    num_replicas, rank = process_share(trainer)
    return ResumableSampler(dataset, num_replicas=num_replicas, rank=rank, seed=training_seed(trainer))
