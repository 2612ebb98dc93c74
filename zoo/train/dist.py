"""Where a training run executes: the device, and the process group of a ``torchrun`` launch.

- ``resolve_device("auto")`` is CUDA when torch sees a GPU, else the CPU; under ``torchrun`` each rank takes
  the GPU of its ``LOCAL_RANK``. The same recipe runs on both (``device = "auto"``, the default).
- The process group is NCCL on CUDA and gloo on the CPU. Every rank draws the same global batch and works on
  its slice; :func:`gather_with_grad` makes the slices' outputs one global batch again (this rank's part keeps
  its graph) and :func:`sum_gradients` sums the ranks' gradients, which is the gradient of the global loss.
"""

from __future__ import annotations

import dataclasses
import os

import torch
import torch.distributed as tdist

from zoo.nn.batching import resolve_device

__all__ = ["Dist", "init_dist", "resolve_device", "gather_with_grad", "all_sum", "all_max", "sum_gradients"]


@dataclasses.dataclass(frozen=True)
class Dist:
    """This process's place in the run: rank, world size, device."""

    rank: int = 0
    world: int = 1
    owns_group: bool = False
    device: torch.device = torch.device("cpu")

    def barrier(self) -> None:
        """Wait for every rank (nothing with one process)."""
        if self.world > 1:
            tdist.barrier()

    def slice(self, batch_size: int) -> slice:
        """This rank's rows of a global batch (``batch_size / world`` consecutive examples)."""
        b = batch_size // self.world
        return slice(self.rank * b, (self.rank + 1) * b)


def init_dist(device: torch.device) -> Dist:
    """One process, or this rank of a ``torchrun`` launch (the group is created here unless it exists)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(device=device)
    owns = not tdist.is_initialized()
    if owns:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        tdist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(tdist.get_rank(), tdist.get_world_size(), owns, device)


def gather_with_grad(x: torch.Tensor, world: int, rank: int) -> torch.Tensor:
    """All ranks' ``x`` concatenated in rank order; this rank's part keeps its autograd graph.

    ``(b, ...) -> (world * b, ...)``; with one process ``x`` itself.
    """
    if world == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world)]
    tdist.all_gather(parts, x.detach().contiguous())
    parts[rank] = x
    return torch.cat(parts)  # (world * b, ...)


def all_sum(x: torch.Tensor, world: int) -> torch.Tensor:
    """The sum of ``x`` over ranks (a new tensor; ``x`` itself with one process)."""
    if world == 1:
        return x
    total = x.detach().clone()
    tdist.all_reduce(total)
    return total


def all_max(value: int, world: int, device: torch.device) -> int:
    """The largest ``value`` of all ranks."""
    if world == 1:
        return value
    t = torch.tensor(value, device=device)
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return int(t)


def sum_gradients(params: list[torch.nn.Parameter], world: int) -> None:
    """Sum the gradients of all ranks in one flat all-reduce (missing gradients count as zero)."""
    if world == 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])  # (P,)
    tdist.all_reduce(flat)
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n
