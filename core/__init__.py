"""polyvae's engine: hook specs, plugin manager, Gaussian experts and fusion maths,
model assembly, the ELBO, data, training and run directories. No modality code."""

__version__ = "0.1.0"
