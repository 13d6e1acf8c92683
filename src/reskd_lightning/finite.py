"""A diverging run stops (or skips the batch) and never saves non-finite weights.

:class:`NonFiniteGuard` checks a training step's loss terms (the cross-entropy and each distiller's) and, before
the optimiser step, the gradients. With ``on_nonfinite="raise"`` (the default) the first non-finite value stops
training with :class:`NonFiniteLossError`, naming the epoch, step, batch, videos and the term (or parameters)
that went non-finite, before any weight is changed; with ``"skip"`` the batch is left out (no optimiser step),
counted, and the run stops once more than ``max_nonfinite_batches`` were skipped. :func:`nonfinite_tensors` lets
a checkpoint refuse weights that are no longer finite.
"""

from __future__ import annotations

from typing import Callable, Iterable, Literal, Mapping

import torch
from torch import Tensor, nn

NonFiniteMode = Literal["raise", "skip"]


class NonFiniteLossError(FloatingPointError):
    """A loss term or a gradient of a training step was NaN or infinite."""


def nonfinite_tensors(tensors: Mapping[str, Tensor]) -> list[str]:
    """Names of the floating-point tensors of ``tensors`` holding a NaN or an infinity."""
    return [k for k, v in tensors.items() if torch.is_tensor(v) and v.is_floating_point() and not v.isfinite().all()]


class NonFiniteGuard:
    """Checks a step's loss terms and gradients; see the module's docstring.

    ``any_rank(flag)`` turns this process's finding into every process's (all skip together or all raise, so
    no DDP process waits for a step the others left out); identity on one process.
    """

    def __init__(self, on_nonfinite: NonFiniteMode = "raise", max_nonfinite_batches: int = 10) -> None:
        if on_nonfinite not in ("raise", "skip"):
            raise ValueError(f"on_nonfinite must be 'raise' or 'skip', got {on_nonfinite!r}")
        if max_nonfinite_batches < 0:
            raise ValueError(f"max_nonfinite_batches must be >= 0, got {max_nonfinite_batches!r}")
        self.on_nonfinite = on_nonfinite
        self.max_nonfinite_batches = int(max_nonfinite_batches)
        self.skipped = 0  # batches skipped so far in the run (saved with the module's checkpoints)

    def _found(self, what: str, where: str) -> bool:
        """Raise, or count a skip (raising past the limit); True: skip the batch."""
        if self.on_nonfinite == "skip":
            self.skipped += 1
            if self.skipped <= self.max_nonfinite_batches:
                return True
            what = f"{what}; {self.skipped} batches skipped, more than max_nonfinite_batches={self.max_nonfinite_batches}"
        raise NonFiniteLossError(
            f"{what} at {where}: training stopped before the weights changed, so the last checkpoint is the last "
            "good state. Lower the lr or a distiller's weight, or check these videos; on_nonfinite: skip leaves "
            "such batches out instead"
        )

    def check_terms(self, terms: Mapping[str, Tensor], where: str, any_rank: Callable[[bool], bool]) -> bool:
        """True when the step must be skipped; raises in ``"raise"`` mode. One device sync for all terms."""
        values = torch.stack([t.detach().float().reshape(()) for t in terms.values()])
        bad_here = not bool(values.isfinite().all())
        if not any_rank(bad_here):
            return False
        if bad_here:
            named = ", ".join(f"{k} = {float(v)}" for k, v in zip(terms, values) if not v.isfinite())
            what = f"non-finite loss term(s) {named}"
        else:
            what = "a non-finite loss term in another process"
        return self._found(what, where)

    def check_gradients(
        self, named_parameters: Iterable[tuple[str, nn.Parameter]], where: str, any_rank: Callable[[bool], bool]
    ) -> bool:
        """True when the optimiser step must be skipped (drop the gradients); raises in ``"raise"`` mode."""
        params = [(n, p) for n, p in named_parameters if p.grad is not None]
        if not params:
            return False
        finite = torch.stack([p.grad.detach().isfinite().all() for _, p in params]).all()
        bad_here = not bool(finite)
        if not any_rank(bad_here):
            return False
        if bad_here:
            names = [n for n, p in params if not p.grad.isfinite().all()]
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            what = f"non-finite gradients of {shown}"
        else:
            what = "non-finite gradients in another process"
        return self._found(what, where)
