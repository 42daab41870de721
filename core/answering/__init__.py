"""Answering: the answerer seam, the extractive answerer, chat models with retries and fallback, prompts
and prices."""
