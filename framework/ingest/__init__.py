"""Ingest: connectors -> ledger -> chunks -> embedder -> index, incremental and crash-safe.

`contract` and `acl` are what connectors implement and use; `pipeline.ingest` runs a whole
ingest; `protocols` names what it writes through (implemented in framework.retrieval).
"""
