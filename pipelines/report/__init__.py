"""A self-contained HTML page of a run: metrics, plots, generated examples, interpolation, config.

Everything (images, audio, scripts) is embedded; the page needs no server and no network.
"""
from .build import REPORT, build_report

__all__ = ["REPORT", "build_report"]
