"""Indexes: Lucene (BM25, impact) via Pyserini; later PLAID via fast-plaid and FAISS."""
