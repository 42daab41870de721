"""The lowest layer: settings, the shared types, the composition root (services), and the concerns below the
graph: answering/, retrieval/ and storage/."""
