"""The one road to Kubernetes: configuration, a lean async client, and our own verbs.

``config`` finds the cluster (``--kubeconfig``, ``KUBECONFIG``, in-cluster, ``~/.kube/config``);
``client.KubeClient`` speaks JSON to the API server over one pooled aiohttp session and maps its
refusals to ``durable_search.errors``; ``api.KubeApi`` holds the calls the operator makes.
"""
