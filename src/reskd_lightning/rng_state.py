"""The main process' random number generators in checkpoints, so a resumed run draws what the uninterrupted run
drew (dropout, drop path, anything random in a training step).

Lightning saves no RNG state in its checkpoints; the training data carries its own randomness
(:mod:`reskd_lightning.data.resumable`), the networks draw from these generators.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.utilities import rank_zero_warn


def collect_rng_states() -> dict[str, Any]:
    """This process' RNG states: torch's CPU generator, every CUDA device's (once CUDA is initialised), numpy's
    global generator and Python's ``random``, as tensors, numbers and tuples only (what Lightning's
    ``torch.load(weights_only=True)`` of a checkpoint accepts; a numpy array is refused)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(gauss)),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Set the generators to ``states`` (a :func:`collect_rng_states`); CUDA's when this process has as many
    devices as the states."""
    torch.set_rng_state(states["torch"])
    kind, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    random.setstate(states["python"])
    cuda = states.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            rank_zero_warn(
                f"the checkpoint holds the RNG states of {len(cuda)} CUDA devices, this process sees "
                f"{torch.cuda.device_count()}: CUDA's RNG is not restored, so dropout on the GPU draws anew"
            )


class RNGStateCheckpoint(pl.Callback):
    """Saves every process' RNG states in each checkpoint (``checkpoint["callbacks"]["RNGStateCheckpoint"]``:
    ``{"ranks": [states of rank 0, rank 1, ...]}``) and restores them when a run resumes, at ``on_train_start``:
    after the resumed run has built its model and loaders, right before the first batch, where the
    uninterrupted run stood when it saved. On another number of processes each rank takes rank ``r % N``'s.

    ``reskd fit`` adds it; in your own Trainer::

        trainer:
          callbacks:
            - class_path: reskd_lightning.rng_state.RNGStateCheckpoint
    """

    def __init__(self) -> None:
        self._trainer: pl.Trainer | None = None
        self._to_restore: list[dict[str, Any]] | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        """Every rank's states (gathered: Lightning builds a checkpoint on every process, rank 0 writes it)."""
        states = collect_rng_states()
        trainer = self._trainer
        if trainer is None or trainer.world_size <= 1 or not (dist.is_available() and dist.is_initialized()):
            return {"ranks": [states]}
        gathered: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, states)
        return {"ranks": gathered}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        ranks = state_dict.get("ranks")
        if not ranks:
            raise KeyError(
                f"RNGStateCheckpoint: the checkpoint's state {sorted(state_dict)} has no 'ranks' (a list of RNG "
                "states per process)"
            )
        self._to_restore = list(ranks)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._to_restore is None:
            return
        ranks, self._to_restore = self._to_restore, None
        restore_rng_states(ranks[trainer.global_rank % len(ranks)])
