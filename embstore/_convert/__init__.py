"""Readers of foreign vector formats, feeding the store builder."""
