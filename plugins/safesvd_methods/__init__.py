"""safesvd built-in plugin: methods."""
