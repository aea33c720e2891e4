"""Instruments beside the grid: `profile`, `trace`, `bands`, `frontier`, `check-gpu` (and the fused trainer it
measures)."""
