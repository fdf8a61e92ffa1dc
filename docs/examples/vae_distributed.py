"""Train the reference VAE on several processes (GPUs, or CPU cores) with DistributedDataParallel.

torchrun starts the processes, one per GPU (on a CPU, as many as asked for), and each runs this
script: it trains on its own shard of every epoch and DDP averages the gradients. Rank 0 writes
the pictures, ``checkpoint.pt`` and ``metrics.csv`` to ``results/``::

    torchrun --nproc_per_node=2 vae_distributed.py --data-dir ../shared/data/mnist --epochs 1 --limit 2000
"""
import argparse
import gc
import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Subset
from torchbearer import Trial

from torchbearer_vae import (
    VAE,
    AutoEncoderDataset,
    Checkpointer,
    IDXDataset,
    MetricsCSV,
    ReconstructionSaver,
    ReduceMetrics,
    SampleSaver,
    TensorLoader,
    kld_loss,
    load_mnist,
    train_val_split,
)


def join():
    """Join the processes torchrun started (it sets RANK, WORLD_SIZE, MASTER_ADDR, ...); return this one's device."""
    if torch.cuda.is_available():
        device = torch.device('cuda', int(os.environ['LOCAL_RANK']))  # one GPU per process
        torch.cuda.set_device(device)
        dist.init_process_group('nccl')
    else:
        device = torch.device('cpu')
        dist.init_process_group('gloo')
    return device


def mnist_images(data_dir, limit=None):
    """MNIST ``(image, label)`` items: IDX files already in ``data_dir``, else downloaded there."""
    try:
        images = IDXDataset.from_folder(data_dir)
    except FileNotFoundError:
        images = load_mnist(data_dir, train=True)  # every rank reads the same files: download them beforehand
    return images if limit is None else Subset(images, range(limit))


def make_loaders(images, batch_size, device):
    """This rank's shard of the training images, and all the validation images."""
    train, val = train_val_split(AutoEncoderDataset(images), val_fraction=0.1, seed=1)  # the same split on all ranks
    # Sharded by the process group's rank and world size; the seed must be the same on every rank.
    train_loader = TensorLoader(train, batch_size, shuffle=True, seed=1, device=device)
    # Not sharded: every rank validates on all of it, so the val_* metrics are the same on every rank.
    val_loader = TensorLoader(val, batch_size, device=device, rank=0, world_size=1)
    return train_loader, val_loader


def make_trial(model, device, results='results'):
    """The model in DistributedDataParallel, and the callbacks: the metrics averaged over the ranks first."""
    model.to(device)
    # No device_ids, even on a GPU: with them DDP copies forward's keyword arguments to the device, and
    # torchbearer's state is one of them (the model would store mu and logvar in a copy).
    ddp_model = DistributedDataParallel(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Trial(ddp_model, optimizer, nn.BCELoss(reduction='sum'), metrics=['loss', 'recon', 'kl'],
                 callbacks=[ReduceMetrics(),  # every rank records the means over the ranks
                            kld_loss(),
                            ReconstructionSaver(folder=results),  # these write on rank 0 only
                            SampleSaver(folder=results),
                            Checkpointer(os.path.join(results, 'checkpoint.pt')),
                            MetricsCSV(os.path.join(results, 'metrics.csv'))]).to(device)


def train(args, device):
    rank = dist.get_rank()
    torch.manual_seed(1 + rank)  # each rank its own draws of z; DDP gives every rank rank 0's weights
    train_loader, val_loader = make_loaders(mnist_images(args.data_dir, args.limit), args.batch_size, device)
    trial = make_trial(VAE(), device, args.results)
    trial.with_generators(train_generator=train_loader, val_generator=val_loader)
    return trial.run(epochs=args.epochs, verbose=args.verbose if rank == 0 else 0)  # one progress bar


def main(argv=None):
    args = parse_args(argv)
    device = join()
    try:
        return train(args, device)
    finally:
        # The Trial refers to itself, so it and its DDP model, which holds the process group, last until a
        # garbage collection; destroying the group before can abort the process at exit.
        gc.collect()
        dist.destroy_process_group()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-dir', default='data', help='folder with MNIST IDX files, or where to download them')
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--batch-size', type=int, default=128, help='per process: the global batch is this x processes')
    parser.add_argument('--limit', type=int, default=None, help='use only the first LIMIT images (a quick run)')
    parser.add_argument('--results', default='results', help='folder for the pictures, checkpoint and CSV')
    parser.add_argument('--verbose', type=int, default=1, help='0: silent, 1: a line per epoch, 2: progress bars')
    return parser.parse_args(argv)


if __name__ == '__main__':
    main()
