"""safesvd built-in plugin: pde."""
