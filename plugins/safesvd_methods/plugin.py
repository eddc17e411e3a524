"""Entry point of the built-in methods."""
