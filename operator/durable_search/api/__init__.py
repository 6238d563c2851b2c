"""The API of Durable Search: names, typed spec values, status shapes and the CRD schemas.

Pure: imports neither kopf nor any HTTP or Kubernetes client.
"""
