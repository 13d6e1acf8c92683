"""Video networks: the VideoRecognizer contract, backbones, heads, weights and the registry."""

from .backbones import TSN, SlowOnly
from .heads import ClsHead
from .recognizer import ModelOutput, VideoRecognizer, as_model_output
from .registry import build_model, build_model_for_input, list_models, register_model
from .weights import load_weights

__all__ = [
    "ClsHead",
    "ModelOutput",
    "SlowOnly",
    "TSN",
    "VideoRecognizer",
    "as_model_output",
    "build_model",
    "build_model_for_input",
    "list_models",
    "load_weights",
    "register_model",
]
