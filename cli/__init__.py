"""The `docent` console script: one module per command group; heavy imports stay inside the commands."""
