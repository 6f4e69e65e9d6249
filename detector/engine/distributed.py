"""Distributed training with PyTorch's own engine: ``torchrun`` and DistributedDataParallel.

    torchrun --nproc_per_node 4 -m detector train --data data/shapes --batch-size 64 ...   # one node, 4 GPUs
    detector train --devices 4 ...                                                          # the same
    torchrun --nnodes 2 --nproc_per_node 8 --node_rank 0 --rdzv_backend c10d \\
        --rdzv_endpoint HOST:29500 -m detector train ...                                    # two nodes

``--batch-size`` is the global batch: every step, the ranks split one global batch between them, taken from
one permutation that every rank draws from the same seeded generator
(:class:`detector.data.loader.GlobalBatchSampler`); the gradients DDP averages are then
those of the whole batch (up to BatchNorm, which sees each rank's part unless ``--sync-bn``: torch's
SyncBatchNorm on GPUs, :class:`GlobalBatchNorm` on CPUs). Logging,
``results.csv`` and checkpoints happen on rank 0; evaluation is split over the ranks and gathered on rank 0.
On GPUs the backend is NCCL, on CPUs gloo.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn


@dataclass(frozen=True)
class Dist:
    """Where this process stands: its rank, how many there are, its local rank on its node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_from_env(device_name: str = "auto") -> tuple[Dist, str]:
    """Join the process group torchrun describes in the environment (``WORLD_SIZE``, ``RANK``, ...), if any.
    Returns the process's place and the device it should use (``cuda:LOCAL_RANK`` on GPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), device_name
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda") or device_name.startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device_name = f"cuda:{local_rank}"
    elif device_name == "auto":
        device_name = "cpu"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Dist(rank, world, local_rank), device_name


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def main_process() -> bool:
    """Whether this process is rank 0 of a torchrun job, or not under torchrun at all: the one that writes the
    run's files and reads them back."""
    return int(os.environ.get("WORLD_SIZE", "1")) <= 1 or int(os.environ.get("RANK", "0")) == 0


@contextmanager
def process_group(device_name: str = "auto") -> Iterator[tuple[Dist, str]]:
    """:func:`init_from_env` for the length of a training run, leaving the process group at the end. A run that
    ends normally ends at a barrier: every rank waits there until rank 0 has written its last files, so no rank
    goes on (to read the run's checkpoint, say) before they exist."""
    ranks, device_name = init_from_env(device_name)
    try:
        yield ranks, device_name
        if ranks.enabled:
            dist.barrier()
    finally:
        if ranks.enabled:
            shutdown()


def wrap_ddp(model: torch.nn.Module, device: torch.device, ranks: Dist) -> torch.nn.Module:
    """``model`` in DistributedDataParallel when there are several ranks, else itself."""
    if not ranks.enabled:
        return model
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the global batch, over every rank of the process group:
    SyncBatchNorm for the CPU (gloo), where torch's has no implementation. The sums go through autograd's
    all-reduce, so the backward pass is the global batch's too. Outside training, or without a process group,
    it is plain BatchNorm; its state dict is BatchNorm's."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected an input of at least 2 dimensions (N, C, ...), got {x.dim()}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not (dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims, shape = [0, *range(2, x.dim())], (1, -1, *[1] * (x.dim() - 2))  # all but channels; (1, C, 1, ...)
        xf = x.float()
        local = torch.cat([xf.sum(dims), xf.new_tensor([x.numel() / x.shape[1]])])  # (C + 1): sums, count
        total = dist_fn.all_reduce(local)
        n, mean = total[-1], total[:-1] / total[-1]  # (C,)
        centred = xf - mean.view(shape)
        var = dist_fn.all_reduce((centred * centred).sum(dims)) / n  # (C,): biased, as BatchNorm normalizes
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = 1 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), m)
                self.running_var.lerp_((var * n / (n - 1).clamp(min=1)).to(self.running_var.dtype), m)
        return y.to(x.dtype)


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with every BatchNorm computing the global batch's statistics: torch's SyncBatchNorm on GPUs,
    :class:`GlobalBatchNorm` elsewhere (the same weights and buffers)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, GlobalBatchNorm):
            new = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            new._parameters, new._buffers = child._parameters, child._buffers  # the same tensors (requires_grad too)
            new.train(child.training)
            setattr(model, name, new)
        else:
            sync_batchnorm(child, device)
    return model


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum ``values`` over the ranks (identity without a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def gather_to_main(obj, d: Dist) -> list | None:
    """Every rank's ``obj``, in rank order, on rank 0 (None elsewhere); ``[obj]`` without a process group."""
    if not d.enabled:
        return [obj]
    out = [None] * d.world if d.main else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast_from_main(obj, d: Dist):
    """Rank 0's ``obj`` on every rank."""
    if not d.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
