"""Refinement with data after the closed form: the distillation loop, its request and its checkpoint."""
