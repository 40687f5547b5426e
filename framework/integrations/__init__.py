"""Adapters that let other frameworks use ragtune: `llama_index` (a retriever, a query engine, an embedding).

This package comes after serving and evaluation in the stage order: it wraps what those
stages built and is imported only by applications, never by another stage.
"""
