"""Retrieval: embedders, the Chroma vector store, the BM25 keyword index, the chunk store that keeps both in
step, and the retriever that fuses them."""
