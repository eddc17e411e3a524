"""The default algorithm's kinds: the clean, shifted and Fisher estimators (energy-balanced by
domain), the whitened solver and the greedy and uniform allocators; ``safesvd_methods`` registers them."""
