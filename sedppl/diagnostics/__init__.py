"""Diagnostics: simulation-based calibration, coverage, method comparison (ArviZ). Not built yet."""
