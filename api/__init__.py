"""Docent's outer layer: the HTTP app (FastAPI) and the `docent` command line."""
