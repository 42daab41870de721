"""ASGI middleware: body size limits, request ids, HTTP metrics and access logs."""
