"""Video networks: the VideoRecognizer contract, backbones, heads, weights and the registry."""

from .backbones import TSM, TSN, X3D, MViTv2, R2Plus1D, SlowFast, SlowOnly, VideoSwin
from .heads import ClsHead
from .mmaction import is_mmaction_state_dict
from .recognizer import ModelOutput, VideoRecognizer, as_model_output
from .registry import build_model, build_model_for_input, list_models, register_model
from .weights import inflate_conv_weight, inflate_state_dict, load_pretrained, load_weights

__all__ = [
    "ClsHead",
    "MViTv2",
    "ModelOutput",
    "R2Plus1D",
    "SlowFast",
    "SlowOnly",
    "TSM",
    "TSN",
    "VideoRecognizer",
    "VideoSwin",
    "X3D",
    "as_model_output",
    "build_model",
    "build_model_for_input",
    "inflate_conv_weight",
    "inflate_state_dict",
    "is_mmaction_state_dict",
    "list_models",
    "load_pretrained",
    "load_weights",
    "register_model",
]
