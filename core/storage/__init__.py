"""Storage: conversation checkpoints, turn records, source records and API keys."""
