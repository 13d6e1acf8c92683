"""A training loader that resumes mid-epoch exactly: the same videos, in the same order, with the same random
choices (frames, crop, flip, label, stand-ins for unreadable videos) as an uninterrupted run.

Three pieces, one job each:

* :func:`sample_seed`: the seed of one sample's random choices, a function of (run seed, epoch, position in
  the epoch's order) only, so it does not depend on which worker, iterator or process draws the sample;
* :class:`ResumableSampler`: a ``DistributedSampler`` (so Lightning keeps it under DDP) whose order depends on
  (seed, epoch) only, which yields :class:`SampleKey` ``(index, seed)`` pairs and can start at a position;
* :class:`ResumableLoader`: a ``DataLoader`` whose ``state_dict`` is (epoch, samples consumed, seed). Lightning
  saves it in the checkpoint (``loops.fit_loop.state_dict.combined_loader``) and hands it back to
  ``load_state_dict`` before the resumed run's first batch (``FitLoop.setup_data``), so the epoch continues at
  the next unseen sample.

``VideoDataset`` draws a ``SampleKey``'s random choices from torch's RNG reseeded with the key's seed (and puts
the RNG back afterwards), so loading a training sample never consumes the main process' RNG either.
"""

from __future__ import annotations

from typing import Any, Iterator, NamedTuple, Sized

import torch
from torch.utils.data import DataLoader, DistributedSampler

_MASK = (1 << 64) - 1


class SampleKey(NamedTuple):
    """What a :class:`ResumableSampler` yields: the record ``index`` and the ``seed`` of its random choices."""

    index: int
    seed: int


def _splitmix64(x: int) -> int:
    """One step of SplitMix64 (Steele et al., 2014): a bijective mix of 64 bits, so nearby inputs give
    unrelated seeds."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """The seed (0 .. 2**64 - 1, what ``torch.manual_seed`` takes) of the sample at ``position`` of ``epoch``'s
    order in a run seeded ``seed``."""
    return _splitmix64(_splitmix64(_splitmix64(seed & _MASK) ^ epoch) ^ position)


class ResumableSampler(DistributedSampler):
    """The training order: a permutation of the dataset drawn from (``seed``, epoch), as torch's
    ``DistributedSampler`` draws it (padded with its first indices to a multiple of ``num_replicas``); rank ``r``
    takes positions ``r, r + N, r + 2N, ...`` of it, from the position given to :meth:`set_start` on.

    It yields ``SampleKey(index, sample_seed(seed, epoch, position))``. Lightning calls ``set_epoch`` before
    every epoch and keeps the sampler under DDP (it is a ``DistributedSampler``); ``len`` is always the whole
    epoch's share, which is what Lightning counts the epoch's batches against when it resumes.

    Built by ``VideoDataModule.train_dataloader`` (rank and world size from the trainer, seed from
    ``seed_everything``); nothing to configure.
    """

    def __init__(self, dataset: Sized, num_replicas: int = 1, rank: int = 0, seed: int = 0, shuffle: bool = True):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.start = 0

    def set_start(self, position: int) -> None:
        """Begin the next iteration at ``position`` of the epoch's order (a count of samples over all ranks)."""
        if position < 0:
            raise ValueError(f"ResumableSampler: the start position must be >= 0, got {position!r}")
        self.start = int(position)

    def order(self) -> list[int]:
        """The epoch's order over all ranks, padded to ``total_size`` (torch's ``DistributedSampler``'s)."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            indices = torch.randperm(len(self.dataset), generator=generator).tolist()  # type: ignore[arg-type]
        else:
            indices = list(range(len(self.dataset)))  # type: ignore[arg-type]
        padding = self.total_size - len(indices)
        while padding > 0:
            indices += indices[:padding]
            padding = self.total_size - len(indices)
        return indices

    def __iter__(self) -> Iterator[SampleKey]:  # type: ignore[override]
        order = self.order()
        seed, epoch = self.seed, self.epoch
        first = self.start + (self.rank - self.start) % self.num_replicas  # this rank's first position from start
        for position in range(first, self.total_size, self.num_replicas):
            yield SampleKey(order[position], sample_seed(seed, epoch, position))


class RNGNeutralLoader(DataLoader):
    """A DataLoader whose iterators leave the process' RNG as they found it.

    Making an iterator draws the workers' base seed from torch's global RNG (every epoch, every validation, once
    for persistent workers), which would shift a resumed run's dropout draws against the uninterrupted run's.
    Here the draw happens inside ``torch.random.fork_rng``, so the main RNG is untouched. (A loader ``generator``
    would do the same, but torch cannot pickle a ``torch.Generator`` into a spawned process, and ``ddp_spawn``
    pickles the loaders a module's previous trainer still holds.)
    """

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        with torch.random.fork_rng(devices=[]):
            return super().__iter__()


class ResumableLoader(RNGNeutralLoader):
    """A ``DataLoader`` over a :class:`ResumableSampler` that Lightning can save and resume mid-epoch.

    ``state_dict()`` is ``{"epoch", "consumed", "seed"}``: the epoch being read, the samples of its order
    already handed out (over all ranks: batches x batch size x world size) and the sampler's seed. After
    ``load_state_dict``, the next iteration, if it is of the same epoch, starts at the first unseen sample;
    otherwise (the checkpoint ended its epoch) it starts the new epoch at its beginning. The saved seed wins over
    the resumed run's, so the order continues. The iterator is made at the first ``next`` (Lightning creates
    it before it calls ``set_epoch`` when it resumes), so the sampler's epoch is the resumed one.

    With another sampler (Lightning puts a ``SequentialSampler`` in for ``overfit_batches``) it is a plain
    ``DataLoader`` whose state is empty.

    Built by ``VideoDataModule.train_dataloader``; nothing to configure (``seed_everything`` sets the seed).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._epoch = 0
        self._consumed = 0
        self._resume: tuple[int, int] | None = None

    def state_dict(self) -> dict[str, int]:
        """Where the training stream is: ``{"epoch", "consumed", "seed"}`` (empty without a ResumableSampler)."""
        if not isinstance(self.sampler, ResumableSampler):
            return {}
        return {"epoch": self._epoch, "consumed": self._consumed, "seed": int(self.sampler.seed)}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        """Continue from ``state_dict`` (a :meth:`state_dict`) at the next iteration."""
        if not state_dict or not isinstance(self.sampler, ResumableSampler):
            return
        missing = {"epoch", "consumed", "seed"} - set(state_dict)
        if missing:
            raise KeyError(
                f"ResumableLoader.load_state_dict: the checkpoint's loader state {state_dict!r} lacks "
                f"{sorted(missing)}; expected the keys epoch, consumed and seed"
            )
        self.sampler.seed = int(state_dict["seed"])
        self._epoch, self._consumed = int(state_dict["epoch"]), int(state_dict["consumed"])
        self._resume = (self._epoch, self._consumed)

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        # A generator: nothing runs until the first `next`, after Lightning's `set_epoch`.
        sampler = self.sampler
        if not isinstance(sampler, ResumableSampler):
            yield from super().__iter__()
            return
        resume, self._resume = self._resume, None
        start = resume[1] if resume is not None and resume[0] == sampler.epoch else 0
        sampler.set_start(start)
        self._epoch, self._consumed = sampler.epoch, start
        per_batch = (self.batch_size or 1) * sampler.num_replicas
        for batch in super().__iter__():
            self._consumed += per_batch
            yield batch
