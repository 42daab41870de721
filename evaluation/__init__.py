"""Evaluation: gold question sets, retrieval and answer metrics, scoring runs over one or several corpora."""
