"""Retrieval evaluation: gold question sets, metrics, scoring runs and the `docent eval` command."""
