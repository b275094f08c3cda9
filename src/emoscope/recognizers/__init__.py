"""Emotion recognisers: the protocol, the registry and the built-in implementations."""

from emoscope.recognizers.base import (
    Recognizer,
    Target,
    available_recognizers,
    flatten_inputs,
    load_recognizer,
    register,
)

__all__ = [
    "Recognizer",
    "Target",
    "available_recognizers",
    "flatten_inputs",
    "load_recognizer",
    "register",
]
