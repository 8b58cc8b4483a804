"""Measuring a trained run: coherence, likelihoods, reconstruction, probes."""
