"""The ``durable-search`` subcommands: each module adds one parser and its handler."""
