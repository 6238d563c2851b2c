"""Helpers shared by the test suites (no fixtures here: those live in the conftest files)."""
