"""Retrieval: the embedder, the Chroma index, BM25, fusion, reranking and confidence.

Every search takes a Principal and filters by ACL; nothing here imports a later stage.
"""
