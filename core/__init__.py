"""Shiren core: the poet service, constrained generation and the 格律 engine."""

__version__ = "0.1.0"

import os as _os

# Shiren never downloads from a model hub: every model is local (shipped or trained here).
_os.environ.setdefault("HF_HUB_OFFLINE", "1")
_os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
