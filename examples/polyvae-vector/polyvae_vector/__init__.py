"""polyvae-vector: the ``vector`` modality, a row of numbers per example.

Installed with pip, it is found by polyvae through the ``polyvae`` entry-point group
(``vector = "polyvae_vector.plugin"``); nothing here runs at import time.
"""
from __future__ import annotations

#: the package version; also the modality's version, so a run trained with one release
#: is refused (not misread) by another whose preprocessing or networks may differ
__version__ = "0.1.0"
