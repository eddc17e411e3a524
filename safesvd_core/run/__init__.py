"""A compression run: the job and plan, the typed state, the phase loop, its seams and the result."""
