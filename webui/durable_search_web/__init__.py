"""Durable Search's web service: the single-page app and the Durable-style HTTP API."""
