# SPDX-License-Identifier: MIT OR Apache-2.0
"""odm-fleet: every recorded clip through the odm GStreamer pipeline, one Ray task per clip, and one report."""
__version__ = "0.1.0"
