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

The loss goes to the DevServer's experiment tracking too (``devservers_sdk.tracking``): one run per
launch, on rank 0, in MLflow and/or Weights & Biases as the DevServer or its namespace configures them
(``spec.tracking``), tagged with the server, flavor and world size. Without configuration that is a no-op.

The backend is nccl when CUDA is available (and the DevServer's backend, ``DEVSERVER_BACKEND``, is not
gloo), else gloo on CPU. Exits 1 if a check fails. Runs in a few seconds on CPU.

Checkpoints: after every ``--checkpoint-every`` epochs rank 0 saves the model and optimizer with
``devservers_sdk.checkpoint.CheckpointManager`` (atomically, into ``~/checkpoints``, the newest 3 kept).
Launched with ``devctl launch NAME --resume -- python train_ddp.py ...`` (or ``launch(..., resume=True)``) it
continues after the newest checkpoint instead of from epoch 1, with the same result as a run that was never
interrupted: the data is fixed per rank and the batches come in the same order::

    resumed from epoch 12
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from devservers_sdk import tracking
from devservers_sdk.checkpoint import CheckpointManager

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


def train(options: argparse.Namespace, backend: str, run: tracking.TrackingRun) -> bool:
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
    optimizer = torch.optim.SGD(model.parameters(), lr=options.lr, momentum=0.9)
    checkpoints = CheckpointManager(keep=3)  # $DEVSERVERS_CHECKPOINT_DIR, else ~/checkpoints
    first_epoch = 1
    restored = checkpoints.resume()  # only when launched with --resume; rank 0 reads, every rank gets it
    if restored is not None:
        model.load_state_dict(restored.state["model"])
        optimizer.load_state_dict(restored.state["optimizer"])
        first_epoch = restored.step + 1
        if rank == 0:
            say(f"resumed from epoch {restored.step}")
    ddp = DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda" else None)
    loss_fn = nn.MSELoss()
    inputs, targets = synthetic_data(rank, options.samples)
    inputs, targets = inputs.to(device), targets.to(device)

    started = time.monotonic()
    for epoch in range(first_epoch, options.epochs + 1):
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
            mean_loss = (total[0] / total[1]).item()
            say(f"epoch {epoch} loss {mean_loss:.4f}")
            run.log({"loss": mean_loss}, step=epoch)
        due = options.checkpoint_every and epoch % options.checkpoint_every == 0
        # Rank 0 writes (the state is the same everywhere under DDP) and says so; the others go on at once.
        if due and checkpoints.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, epoch):
            say(f"checkpoint saved at epoch {epoch}")
        time.sleep(options.epoch_delay)

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
        say(f"trained {options.epochs - first_epoch + 1} epochs in {time.monotonic() - started:.2f}s")
        if options.print_parameters:  # 32 values a line: launch output splits very long lines
            values = [float(value) for value in flat.cpu().tolist()]
            for start in range(0, len(values), 32):
                say(f"final parameters {start} {json.dumps(values[start:start + 32])}")
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
    parser.add_argument("--checkpoint-every", type=int, default=1, metavar="EPOCHS",
                        help="save a checkpoint every this many epochs (0: never)")
    parser.add_argument("--epoch-delay", type=float, default=0.0, metavar="SECONDS",
                        help="pause after each epoch (to watch a run, or to interrupt one in a demo)")
    parser.add_argument("--print-parameters", action="store_true",
                        help="rank 0 prints the final parameters as JSON (to compare runs)")
    options = parser.parse_args()

    torch.set_num_threads(1)  # several processes share a few CPUs
    backend = choose_backend()
    dist.init_process_group(backend)
    hyperparameters = {"epochs": options.epochs, "samples": options.samples, "batch_size": options.batch_size,
                       "lr": options.lr, "backend": backend}
    try:
        with tracking.start_run(config=hyperparameters) as run:  # a no-op but on rank 0
            ok = train(options, backend, run)
        # Nobody leaves while a peer still talks to it: gloo aborts a process whose peer vanished mid-exit.
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return 0 if ok else 1


if __name__ == "__main__":
    code = main()
    # Leave without Python's shutdown: gloo's worker threads outlive destroy_process_group, and one that lets
    # go of its last collective (which holds our tensors) while the interpreter finalizes aborts the process
    # ("terminate called without an active exception", SIGABRT) after all the work is done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
