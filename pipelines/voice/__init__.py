"""Voice: singer embeddings, voice interpolation, matching and morphing, voice features."""
