"""Batch ingestion: load sources, split them into chunks, embed and write them to Chroma."""
