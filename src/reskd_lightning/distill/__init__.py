"""Distillation losses, each a Lightning callback that ResKDModule pulls a loss term from."""

from .base import DistillationLoss, as_feature_map, tapped
from .feature import FeatureMapKD, upsample_feature_map
from .logit import LogitKD, LogitMapKD, kd_kl_div, logit_map_kl, logit_map_of
from .schedules import Constant, Cosine, LinearWarmup, Progress, Schedule

__all__ = [
    "Constant",
    "Cosine",
    "DistillationLoss",
    "FeatureMapKD",
    "LinearWarmup",
    "LogitKD",
    "LogitMapKD",
    "Progress",
    "Schedule",
    "as_feature_map",
    "kd_kl_div",
    "logit_map_kl",
    "logit_map_of",
    "tapped",
    "upsample_feature_map",
]
