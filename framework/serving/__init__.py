"""Serving: the generator (one base model, adapters per request) and the router that decides
mode, adapter and abstention for every question."""
