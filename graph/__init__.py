"""The Docent graph: append message → retrieve → summarize → persist."""
