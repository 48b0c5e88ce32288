"""Checkpoints: model cards, carded safetensors files and families of them, foreign formats
and importing them."""
