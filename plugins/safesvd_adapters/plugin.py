"""Entry point of the built-in model adapters."""
