"""Which device generation (and the critic, and a feedback round) runs on.

`SHIREN_DEVICE` = `auto` (the default: CUDA when torch sees a GPU, else the CPU), `cpu`, `cuda` or
`cuda:N`; `shiren write --device …` and `Poet(device=…)` override it for one poet. On the CPU the C
decode kernel stays the default (core.fastc); on CUDA the engine runs its PyTorch forward, masks and
sampler on the GPU's tensors (core.engine, core.fastlm). Serving and training code both read this, so
it imports nothing but torch.
"""

from __future__ import annotations

import os

import torch

from core.types import ShirenError

ENV = "SHIREN_DEVICE"


class DeviceError(ShirenError):
    """An impossible device request (CUDA asked for where torch sees none, an unknown name)."""


def resolve_device(pref: str | torch.device | None = None) -> torch.device:
    """The device to use: `pref` if given, else SHIREN_DEVICE, else auto."""
    if isinstance(pref, torch.device):
        pref = str(pref)
    name = (pref if pref is not None else os.environ.get(ENV, "")).strip().lower() or "auto"
    if name == "auto":
        return canonical("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(f"{ENV}/--device asks for {name}, but torch sees no CUDA device "
                              f"(torch {torch.__version__}; a CPU build of torch has no CUDA: see README, On a GPU)")
        try:
            dev = canonical(name)
        except RuntimeError as e:
            raise DeviceError(f"not a device: {name!r}") from e
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"{name}: torch sees only {torch.cuda.device_count()} CUDA device(s)")
        return dev
    raise DeviceError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")


def describe(device: torch.device) -> str:
    """One line naming the device, for logs and `shiren bench`."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}, torch {torch.__version__})"
    return f"CPU (torch {torch.__version__})"


def canonical(device: torch.device | str) -> torch.device:
    """`device` with its index spelled out ("cuda" → "cuda:0"), so it compares equal to a tensor's."""
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return dev
