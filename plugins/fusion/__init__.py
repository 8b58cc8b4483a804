"""Fusion plugins: product of experts, mixture of experts, mixture of products."""
