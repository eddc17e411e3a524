"""Module trees: compressible layers as linear maps, the low-rank replacement, capture hooks, layer
latency."""
