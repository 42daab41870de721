"""Deployment: the server-mode topology (topology.py), the local cluster that runs it (local_cluster.py)
and the files generated from it (compose.yaml, nginx.compose.conf). Standard library only; not shipped."""
