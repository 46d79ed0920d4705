"""Fake NVIDIA GPUs for the local node, so GPU flavors schedule, get their env and can be watched on a laptop.

What a GPU node offers a pod, minus the GPU: the Node advertises ``nvidia.com/gpu`` in its capacity (as kwok
does) with the labels NVIDIA's feature discovery sets (``nvidia.com/gpu.present``, ``.count``, ``.product``);
a container that asks for GPUs gets device indices of its own (freed when its pod goes), and an
``nvidia-smi`` first on its PATH that reports them. The processes still run on the CPU.

Tests control what that ``nvidia-smi`` reports: utilisation and memory in use, read on every call from
small files under the node's state directory (``write_reading``): one for a pod (``pods/<ns>.<name>``),
else one per physical GPU (``gpus/<index>``), else the node's default, else 0 % and 0 MiB.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["GPU_RESOURCE", "MEMORY_TOTAL_MIB", "FakeGpus", "control_dir", "write_reading"]

GPU_RESOURCE = "nvidia.com/gpu"
MEMORY_TOTAL_MIB = 81920
PRODUCT = "Localcluster-Fake-GPU"

_SCRIPT = r"""#!/bin/sh
# nvidia-smi of the local cluster's fake GPUs, written by the node agent (devservers_sdk/localcluster/node/fake_gpus.py).
dir='@CONTROL@'
query=""
format=""
list=""
for arg in "$@"; do
  case $arg in
    --query-gpu=*) query=${arg#--query-gpu=} ;;
    --format=*) format=${arg#--format=} ;;
    -L|--list-gpus) list=1 ;;
  esac
done
reading() {
  for f in "$dir/pods/$LOCALCLUSTER_POD" "$dir/gpus/$1" "$dir/default"; do
    if [ -r "$f" ]; then
      read -r u m < "$f"
      echo "${u:-0} ${m:-0}"
      return
    fi
  done
  echo "0 0"
}
units=1
case $format in *nounits*) units="" ;; esac
index=0
if [ -z "$query" ] && [ -z "$list" ]; then
  echo "NVIDIA-SMI (local cluster fake GPUs: no real device)"
fi
if [ -n "$query" ] && [ -n "$format" ] && case $format in *noheader*) false ;; *) true ;; esac; then
  echo "$query" | sed 's/,/, /g'
fi
for physical in $(echo "$LOCALCLUSTER_GPUS" | tr ',' ' '); do
  set -- $(reading "$physical")
  util=$1
  used=$2
  if [ -n "$list" ]; then
    echo "GPU $index: @PRODUCT@ (UUID: GPU-localcluster-$physical)"
  elif [ -n "$query" ]; then
    line=""
    for field in $(echo "$query" | tr ',' ' '); do
      case $field in
        index) value=$index ;;
        utilization.gpu) value=$util; [ -n "$units" ] && value="$value %" ;;
        memory.used) value=$used; [ -n "$units" ] && value="$value MiB" ;;
        memory.total) value=@TOTAL@; [ -n "$units" ] && value="$value MiB" ;;
        name) value="@PRODUCT@" ;;
        uuid) value="GPU-localcluster-$physical" ;;
        *) value="[N/A]" ;;
      esac
      line="${line:+$line, }$value"
    done
    echo "$line"
  else
    echo "GPU $index: @PRODUCT@  utilization $util %  memory $used / @TOTAL@ MiB"
  fi
  index=$((index + 1))
done
"""


def control_dir(node_state_dir: Path | str) -> Path:
    """Where a node's fake GPUs read what to report (see the module docstring)."""
    return Path(node_state_dir) / "fake-gpus"


def write_reading(
    node_state_dir: Path | str,
    utilization: float,
    *,
    memory_used_mib: float = 0,
    pod: tuple[str, str] | None = None,
    gpu: int | None = None,
) -> None:
    """Make ``nvidia-smi`` report ``utilization`` percent: for one pod ``(namespace, name)``, one physical
    GPU, or (neither) every GPU of the node without a reading of its own. Written atomically."""
    base = control_dir(node_state_dir)
    if pod is not None:
        path = base / "pods" / f"{pod[0]}.{pod[1]}"
    elif gpu is not None:
        path = base / "gpus" / str(gpu)
    else:
        path = base / "default"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{utilization:g} {memory_used_mib:g}\n")
    os.replace(tmp, path)


class FakeGpus:
    """The node's fake GPUs: labels, the ``nvidia-smi`` script, and which container holds which device."""

    def __init__(self, state_dir: Path, count: int) -> None:
        self.count = count
        self.control = control_dir(state_dir)
        self.bin_dir = self.control / "bin"
        self._held: dict[str, list[int]] = {}

    def install(self) -> None:
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        script = (
            _SCRIPT.replace("@CONTROL@", str(self.control))
            .replace("@TOTAL@", str(MEMORY_TOTAL_MIB))
            .replace("@PRODUCT@", PRODUCT)
        )
        target = self.bin_dir / "nvidia-smi"
        tmp = target.with_name(".nvidia-smi.tmp")
        tmp.write_text(script)
        tmp.chmod(0o755)
        os.replace(tmp, target)

    def labels(self) -> dict[str, str]:
        return {
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.count": str(self.count),
            "nvidia.com/gpu.product": PRODUCT,
        }

    def allocate(self, holder: str, wanted: int) -> list[int]:
        """``wanted`` free device indices for ``holder`` (the same ones again when it asks again)."""
        if holder in self._held:
            return self._held[holder]
        taken = {index for indices in self._held.values() for index in indices}
        free = [index for index in range(self.count) if index not in taken]
        # The scheduler admitted the pod against the node's allocatable, so there are enough; a pod bound
        # by hand past it shares the highest devices rather than failing, as an overcommitted node would.
        chosen = (free + list(range(self.count)))[: min(wanted, self.count)]
        self._held[holder] = chosen
        return chosen

    def release(self, pod_uid: str) -> None:
        for holder in [h for h in self._held if h.split("/", 1)[0] == pod_uid]:
            del self._held[holder]

    def container_env(self, *, pod_uid: str, container: str, namespace: str, pod_name: str, wanted: int,
                      path: str) -> dict[str, str]:
        """PATH with the fake ``nvidia-smi`` first, and the devices, for a container that asks for GPUs."""
        indices = self.allocate(f"{pod_uid}/{container}", wanted)
        devices = ",".join(map(str, indices))
        return {
            "PATH": os.pathsep.join(p for p in (str(self.bin_dir), path) if p),
            "LOCALCLUSTER_GPUS": devices,
            "LOCALCLUSTER_POD": f"{namespace}.{pod_name}",
            "NVIDIA_VISIBLE_DEVICES": devices,
        }
