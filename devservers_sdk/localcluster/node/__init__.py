"""The node agent: a kubelet whose containers are local processes, and the protocols it serves."""
