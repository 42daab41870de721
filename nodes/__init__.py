"""The graph's nodes, one per file: small functions of (state, runtime) returning a partial update."""
