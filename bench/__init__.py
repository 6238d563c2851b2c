"""Benchmarks: figures for the README and issue notes, never asserted in tests."""
