"""safesvd built-in plugin: adapters."""
