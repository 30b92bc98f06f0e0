"""Torch devices from ``train.device``: resolution, availability and a readable label."""

from __future__ import annotations

import torch

from rnnlab.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``train.device`` as a torch device; a device this machine lacks is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index or 0) >= count:
            raise ConfigError(
                f"train.device: {name!r} is not available (this machine has {count} CUDA "
                f"device(s)); use device: auto or cpu"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"train.device: {name!r} is not available; use device: auto or cpu")
    return device


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return device.type
