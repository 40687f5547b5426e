"""Adapters: the registry of trained LoRA versions, their manifests, staleness and merging."""
