"""Distillation losses, each a Lightning callback that ResKDModule pulls a loss term from."""

from .base import DistillationLoss
from .feature import FeatureMapKD, upsample_feature_map
from .logit import LogitKD, kd_kl_div

__all__ = ["DistillationLoss", "FeatureMapKD", "LogitKD", "kd_kl_div", "upsample_feature_map"]
