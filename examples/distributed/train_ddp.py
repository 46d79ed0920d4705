"""A tiny DistributedDataParallel training run, for every rank of a distributed DevServer.

Launch it on all ranks at once (torchrun takes the group's shape from the DevServer's environment)::

    client.launch("ddp", "train_ddp.py --epochs 5")        # the SDK
    devctl launch ddp -- python train_ddp.py --epochs 5    # a terminal

Each process fits a 2-layer MLP to synthetic regression data of its own (seeded by its rank; the true
function is the same everywhere), DDP averages the gradients, and rank 0 prints the loss averaged over
all ranks once per epoch::

    epoch 1 loss 0.7312

At the end every rank contributes its rank to an all-reduce, which proves that all processes joined one
process group, and rank 0 checks that the model is identical everywhere::

    all_reduce sum = 6.0 (expected 6.0 = 0+1+2+3)
    world_size=4
    parameters identical on all 4 ranks

The backend is nccl when CUDA is available (and the DevServer's backend, ``DEVSERVER_BACKEND``, is not
gloo), else gloo on CPU. Exits 1 if a check fails. Runs in a few seconds on CPU.
"""

from __future__ import annotations

import argparse
import gc
import os
import socket
import sys
import time

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

FEATURES = 8


def choose_backend() -> str:
    wanted = os.environ.get("DEVSERVER_BACKEND", "")
    if torch.cuda.is_available() and wanted != "gloo":
        return "nccl"
    return "gloo"


def synthetic_data(rank: int, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs seeded per rank; targets from one fixed function (seed 0) plus a little noise."""
    truth = torch.Generator().manual_seed(0)
    weights = torch.randn(FEATURES, 1, generator=truth)
    generator = torch.Generator().manual_seed(1000 + rank)
    inputs = torch.randn(samples, FEATURES, generator=generator)
    targets = torch.tanh(inputs @ weights) + 0.05 * torch.randn(samples, 1, generator=generator)
    return inputs, targets


def train(options: argparse.Namespace, backend: str) -> bool:
    """Train, check, report; every object that holds the process group is gone when this returns."""
    rank, world_size = dist.get_rank(), dist.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    node_rank = os.environ.get("GROUP_RANK", os.environ.get("NODE_RANK", "?"))
    device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    say(f"rank {rank}/{world_size} (node {node_rank}, local {local_rank}) on {socket.gethostname()} "
        f"backend {backend}")

    torch.manual_seed(0)  # the same initial model everywhere (DDP also broadcasts rank 0's)
    model = nn.Sequential(nn.Linear(FEATURES, 32), nn.ReLU(), nn.Linear(32, 1)).to(device)
    ddp = DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda" else None)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=options.lr, momentum=0.9)
    loss_fn = nn.MSELoss()
    inputs, targets = synthetic_data(rank, options.samples)
    inputs, targets = inputs.to(device), targets.to(device)

    started = time.monotonic()
    for epoch in range(1, options.epochs + 1):
        total = torch.zeros(2, device=device)  # sum of losses, number of batches
        for start in range(0, options.samples, options.batch_size):
            batch, expected = inputs[start:start + options.batch_size], targets[start:start + options.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(ddp(batch), expected)
            loss.backward()
            optimizer.step()
            total += torch.stack([loss.detach(), torch.ones((), device=device)])
        dist.all_reduce(total)
        if rank == 0:
            say(f"epoch {epoch} loss {(total[0] / total[1]).item():.4f}")

    contribution = torch.tensor([float(rank)], device=device)
    dist.all_reduce(contribution)
    expected_sum = float(sum(range(world_size)))
    flat = torch.cat([parameter.detach().flatten() for parameter in model.parameters()])
    lowest, highest = flat.clone(), flat.clone()
    dist.all_reduce(lowest, op=dist.ReduceOp.MIN)
    dist.all_reduce(highest, op=dist.ReduceOp.MAX)
    identical = bool(torch.equal(lowest, highest))
    if rank == 0:
        terms = "+".join(str(r) for r in range(world_size))
        say(f"all_reduce sum = {contribution.item():.1f} (expected {expected_sum:.1f} = {terms})")
        say(f"world_size={world_size}")
        say(f"parameters {'identical' if identical else 'DIFFER'} on all {world_size} ranks")
        say(f"trained {options.epochs} epochs in {time.monotonic() - started:.2f}s")
    return contribution.item() == expected_sum and identical


def say(line: str) -> None:
    """One write per line: the processes of a pod share its output, and print() writes the newline apart."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--samples", type=int, default=512, help="samples per rank")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.1)
    options = parser.parse_args()

    torch.set_num_threads(1)  # several processes share a few CPUs
    backend = choose_backend()
    dist.init_process_group(backend)
    try:
        ok = train(options, backend)
        # Nobody leaves while a peer still talks to it: gloo aborts a process whose peer vanished mid-exit.
        dist.barrier()
    finally:
        gc.collect()  # DDP's reducer holds the group; let it go while the group still exists
        dist.destroy_process_group()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
