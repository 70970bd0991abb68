"""Shipped weights: `base/` (the pretrained GPT) and `adapters/<name>/` (LoRA adapters). Data only."""
