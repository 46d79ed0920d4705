"""Connecting to a DevServer from outside: port-forward, files both ways, SSH and JupyterLab.

Everything here goes through the API server (``pods/portforward`` and ``pods/exec``), so nothing opens a
port on the cluster and the user needs no more rights than ``devctl shell`` already needs. The client's
``port_forward``, ``copy_to``, ``copy_from``, ``sync`` and ``jupyter`` methods are the way in; these
modules hold the machinery.
"""
