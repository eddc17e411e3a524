"""Entry point of the built-in PDE plugin (filled in by the physics work)."""
