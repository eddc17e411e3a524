"""The default phases, in run order: probe, λ, clean statistics, allocation, stages."""
