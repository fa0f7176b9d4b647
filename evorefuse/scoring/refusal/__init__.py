"""scoring/refusal."""
