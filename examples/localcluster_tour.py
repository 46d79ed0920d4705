"""A tour of the local cluster with the real kubectl: the main job of the README's first command.

It starts a local cluster, then does what the devservers operator will do for a 2-rank distributed
DevServer, by hand: a headless Service and a StatefulSet with a persistent home volume per rank. It
waits for both pods to be Ready, writes a file into rank 0's home, shows that rank 1 resolves rank 0 by
its cluster DNS name, reads a pod's logs, deletes rank 0's pod and shows the file is still there in the
replacement pod, and cleans up. Every step is a plain ``kubectl`` command, printed before it runs.

Run: ``.venv/bin/python examples/localcluster_tour.py``
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from devservers_sdk.localcluster import LocalCluster

KUBECTL = str(Path(sys.executable).parent / "kubectl")

MANIFEST = textwrap.dedent("""
    apiVersion: v1
    kind: Service
    metadata: {name: tour}
    spec:
      clusterIP: None
      publishNotReadyAddresses: true
      selector: {app: tour}
      ports: [{name: torch-master, port: 29500}]
    ---
    apiVersion: apps/v1
    kind: StatefulSet
    metadata: {name: tour}
    spec:
      replicas: 2
      serviceName: tour
      podManagementPolicy: Parallel
      selector: {matchLabels: {app: tour}}
      template:
        metadata: {labels: {app: tour}}
        spec:
          containers:
          - name: dev
            image: pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
            command: ["/bin/sh", "-c", "echo rank $(hostname) up; trap 'exit 0' TERM; while :; do sleep 1; done"]
            env: [{name: HOME, value: /home/dev}]
            volumeMounts: [{name: home, mountPath: /home/dev}]
            readinessProbe:
              exec: {command: ["true"]}
              periodSeconds: 1
      volumeClaimTemplates:
      - metadata: {name: home}
        spec:
          accessModes: [ReadWriteOnce]
          resources: {requests: {storage: 1Gi}}
    """)


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None) -> str:
    print(f"$ kubectl {' '.join(args)}", flush=True)
    result = subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, *args], input=stdin, capture_output=True,
                            text=True, timeout=120)
    output = (result.stdout + result.stderr).rstrip()
    if output:
        print(textwrap.indent(output, "  "), flush=True)
    if result.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed with exit code {result.returncode}")
    return result.stdout


def main() -> None:
    started = time.perf_counter()
    with LocalCluster() as cluster:
        config = cluster.kubeconfig
        print(f"local cluster at {cluster.url} (kubeconfig {config})\n", flush=True)
        kubectl(config, "get", "nodes", "-o", "wide")
        kubectl(config, "apply", "-f", "-", stdin=MANIFEST)
        kubectl(config, "wait", "pod/tour-0", "pod/tour-1", "--for=condition=Ready", "--timeout=60s")
        kubectl(config, "get", "statefulsets,pods,pvc", "-o", "wide")

        kubectl(config, "exec", "tour-0", "--", "sh", "-c", "echo 'checkpoint-epoch-3' > $HOME/notes.txt")
        kubectl(config, "exec", "tour-1", "--", "python3", "-c",
                "import socket; print('tour-0 resolves to', socket.gethostbyname('tour-0.tour.default.svc.cluster.local'))")
        kubectl(config, "logs", "tour-1")

        kubectl(config, "delete", "pod", "tour-0", "--wait=true")
        kubectl(config, "wait", "pod/tour-0", "--for=condition=Ready", "--timeout=60s")
        notes = kubectl(config, "exec", "tour-0", "--", "cat", "/home/dev/notes.txt").strip()
        if notes != "checkpoint-epoch-3":
            raise SystemExit(f"the home volume lost its data: read {notes!r}")
        print("the file written before the pod was deleted is still in its home volume\n", flush=True)

        kubectl(config, "delete", "statefulset,service", "tour", "--wait=true")
        kubectl(config, "delete", "pvc", "home-tour-0", "home-tour-1", "--wait=true")
    print(f"tour finished in {time.perf_counter() - started:.1f}s", flush=True)


if __name__ == "__main__":
    main()
