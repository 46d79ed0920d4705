"""A local Kubernetes API emulator with a process kubelet: the cluster every test talks to.

It is generic: it knows nothing of DevServers and imports nothing else from ``devservers_sdk``.
Start it with ``python -m devservers_sdk.localcluster serve --kubeconfig PATH`` or, in Python::

    from devservers_sdk.localcluster import LocalCluster

    with LocalCluster() as cluster:
        ...  # cluster.kubeconfig is the path of a kubeconfig for it
"""

from .cluster import LocalCluster, kubeconfig_document, serve, write_kubeconfig

__all__ = ["LocalCluster", "kubeconfig_document", "serve", "write_kubeconfig"]
