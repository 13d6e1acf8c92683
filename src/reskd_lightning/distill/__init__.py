"""Distillation losses, each a Lightning callback that ResKDModule pulls a loss term from (the contract:
:class:`DistillationLoss`)."""

from .attention import AttentionTransfer, attention_map, attention_transfer_loss
from .base import DistillationLoss, SoftTargetLoss, as_feature_map, tapped
from .dkd import DecoupledKD, dkd_terms
from .feature import FeatureMapKD
from .logit import LogitKD, LogitMapKD, kd_kl_div, logit_map_kl, logit_map_of
from .schedules import Constant, Cosine, LinearWarmup, Progress, Schedule

__all__ = [
    "AttentionTransfer",
    "Constant",
    "Cosine",
    "DecoupledKD",
    "DistillationLoss",
    "FeatureMapKD",
    "LinearWarmup",
    "LogitKD",
    "LogitMapKD",
    "Progress",
    "Schedule",
    "SoftTargetLoss",
    "as_feature_map",
    "attention_map",
    "attention_transfer_loss",
    "dkd_terms",
    "kd_kl_div",
    "logit_map_kl",
    "logit_map_of",
    "tapped",
]
