"""The durable HTTP executor: the shared client, redirects, decoding, body policy, SSRF guard.

Its errors are the ``ExchangeError`` branch of ``durable_search.errors``.
"""
