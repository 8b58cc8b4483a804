"""Built-in plugins: modalities (image, text, audio), fusions (poe, moe, mopoe) and models.

They are registered through the same hooks as any third-party plugin.
"""
