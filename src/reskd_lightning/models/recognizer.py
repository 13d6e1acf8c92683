"""The contract every video network of the library follows."""

from __future__ import annotations

from typing import Mapping, NamedTuple

from torch import Tensor, nn


class ModelOutput(NamedTuple):
    """What a recognizer returns: its last feature map ``[N, C', T', h, w]`` and class logits ``[N, K]``.

    ``taps`` holds intermediate outputs captured during the forward pass (module path -> raw output), which
    :class:`~reskd_lightning.ResKDModule` fills for distillers that ask for a stage other than the last.
    """

    features: Tensor
    logits: Tensor
    taps: Mapping[str, Tensor] | None = None


class VideoRecognizer(nn.Module):
    """A video classifier split into a backbone (``forward_features``) and a head (``forward_head``).

    Subclasses implement both halves; ``forward`` returns both results as a :class:`ModelOutput`, so
    distillers can use the feature map (FeatureMapKD) or the logits (LogitKD). 2-D networks fold time into the
    batch inside ``forward_features`` and unfold it again, so every feature map is 5-D.

    Attributes:
        num_classes: size of the classifier's output.
        feature_dim: channels ``C'`` of the feature map.
    """

    num_classes: int
    feature_dim: int

    def forward_features(self, x: Tensor) -> Tensor:
        """Backbone: clip ``[N, C, T, H, W]`` -> feature map ``[N, C', T', h, w]``."""
        raise NotImplementedError

    def forward_head(self, features: Tensor) -> Tensor:
        """Head: feature map ``[N, C', T', h, w]`` -> logits ``[N, K]``."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> ModelOutput:
        """Run backbone and head on a clip ``[N, C, T, H, W]``."""
        if x.dim() != 5:
            raise ValueError(
                f"{type(self).__name__} expects a clip of shape [N, C, T, H, W], got shape {tuple(x.shape)}"
            )
        features = self.forward_features(x)
        return ModelOutput(features=features, logits=self.forward_head(features))

    def logit_map(self, features: Tensor) -> Tensor:
        """The classifier at every location: feature map ``[N, C', T', h, w]`` -> ``[N, K, T', h, w]``.

        The default uses the ``cls_head``'s ``logit_map`` (every network of the library has one).
        """
        head = getattr(self, "cls_head", None)
        if head is None or not hasattr(head, "logit_map"):
            raise NotImplementedError(f"{type(self).__name__} has no cls_head with a logit_map; override logit_map")
        return head.logit_map(features)


def as_model_output(output: object) -> ModelOutput:
    """Accept a user's network that returns a ModelOutput, a ``(features, logits)`` pair or plain logits.

    Plain logits carry no feature map; distillers that need one say so when they are called.
    """
    if isinstance(output, ModelOutput):
        return output
    if isinstance(output, tuple) and len(output) == 2:
        return ModelOutput(*output)
    if isinstance(output, Tensor):
        return ModelOutput(features=None, logits=output)  # type: ignore[arg-type]
    if isinstance(output, dict) and "logits" in output:
        return ModelOutput(features=output.get("features"), logits=output["logits"])  # type: ignore[arg-type]
    raise TypeError(
        "a student/teacher must return a ModelOutput, a (features, logits) tuple, a dict with 'logits' or a "
        f"logits tensor; got {type(output).__name__}"
    )
