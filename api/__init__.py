"""Docent's HTTP face: the FastAPI app factory, its routes, schemas, middleware and security."""
