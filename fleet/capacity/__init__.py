"""Capacity planning: how many GPUs a model needs for its memory and for its traffic and latency targets."""
