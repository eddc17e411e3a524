"""Linear algebra below everything else: PSD roots with jitter and fallbacks, balanced factor splits."""
