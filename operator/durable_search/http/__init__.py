"""The durable HTTP executor: one shared client, redirects, the body policy, the SSRF guard.

Exceptions::

    TransportError          no HTTP answer for this exchange
     └── (blocked=True)     the SSRF guard refused the address about to be connected to
"""
