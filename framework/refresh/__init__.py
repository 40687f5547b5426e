"""Refresh: changed documents to a new adapter version, gated and promoted in one run (`ragtune refresh`).

The last stage before the command line: it orchestrates ingest, synthesis, training and
evaluation, which all come before it, and decides promotion. See run.py for the flow,
plan.py for what counts as changed, state.py for crash safety and gate.py for the gate.
"""
