"""The local control plane used by ``make up``, ``make cluster-up`` and the test suite.

``build`` makes the binaries from the Go module proxy, ``pki`` the certificates, ``kubeconfig``
the admin credentials file, and ``controlplane`` starts, reuses and stops the processes.
"""
