"""Durable Search: durable HTTP fan-out/fan-in orchestrations as Kubernetes custom resources."""

__version__ = "0.1.0"
