"""The demo search site that ``make up`` runs and the tests use as real providers."""
