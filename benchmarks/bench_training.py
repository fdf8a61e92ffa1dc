"""How fast torchbearer_vae trains the reference VAE, against the bare PyTorch loop (issue 5).

Runs in one process, interleaved epoch by epoch (1 2 3 4 1 2 3 4 ...), with the same model
(torchbearer_vae.VAE), seed and data (the 10,000 real MNIST images of ../shared/data/mnist, split
9,000 train + 1,000 validation with train_val_split(seed=1); one epoch trains on the 9,000 and
validates on the 1,000, batch 128):

  (1) floor: a bare PyTorch loop over a preloaded float tensor, batches x[perm[i:i+128]];
  (2) the PyTorch VAE example's data path: torchvision's MNIST (a PIL image per item, ToTensor),
      DataLoader collation, and the example's reconstruction picture on the first validation batch;
  (3) a bare torchbearer Trial over TensorLoader (the example's loss as criterion, no callbacks);
  (4) torchbearer_vae: Trial + TensorLoader + kld_loss + ReconstructionSaver() (validation pictures).

(1)-(3) use the example's loss, BCE(sum) + KL; (4) BCELoss(sum) + the kld_loss callback: the same
objective. Every method uses the same optimizer: Adam(lr=1e-3, fused=True), which ``torchbearer-vae
train`` uses (--adam default: Adam's default per-parameter loop, as in the PyTorch example). Every
run starts from torch.manual_seed(seed); the first epoch of each run is a warm-up and is not timed.
It prints the median seconds per epoch, images per second (10,000 images per epoch: 9,000 trained
+ 1,000 validated), the data each path holds and the peak resident memory, then the ratios
(4)/(1), (2)/(4), (4)/(3) against the targets of issue 5.

The scale check trains (4) on the first 2,500 / 5,000 / 10,000 images: the time per image
interleaved in this process, the peak memory in a fresh process per size (so that it is its own).

Measurement (5), --cli: one epoch of the ``torchbearer-vae train`` command (9,000 + 1,000 images,
with its pictures, CSV and checkpoint), as (time of E epochs - time of 1 epoch) / (E - 1) so that
start-up cancels out, against the floor (1) measured again in a child process between those runs,
round by round (--cli-rounds); and, as a cross-check that the machine's slower spells cannot tilt,
the command's own Trial timed epoch by epoch in turn with the floor, in this process.

Measurement (6), --peers: the same VAE trained by pythae's TrainingPipeline and by Lightning's Trainer
(the programs of peers.py, each as its library's documentation shows), whole processes of 1 and of E
epochs, round by round in an order rotated every round with the floor (--floor-child) and our command
(and ``ours --compile`` if the command has that flag); per epoch = (t(E) - t(1)) / (E - 1), the ratios
ours/pythae, ours/Lightning and ours/floor per round, and ours/Trial against the bare torchbearer Trial
(3) in a process of its own (--trial-child): what our callbacks, metrics and files add to torchbearer's
loop. A peer that is not installed is skipped with a line (``pip install -e ".[bench]"`` installs both).

Measurement (7), --parts: where the command's epoch goes. Its own Trial (as ``train --quiet`` builds it)
trains epoch by epoch in turn with the same-job floor in this process, each callback's hooks, torchbearer's
metric pass and the state copy torchbearer makes for it at every step timed by wrapping them: milliseconds
per epoch of each, and what is in no hook (the loaders, the step's computation, torchbearer's loop).

    python benchmarks/bench_training.py              # the full comparison (about 1 minute on 2 cores)
    python benchmarks/bench_training.py --quick      # a quick look (about 25 s)
    python benchmarks/bench_training.py --cli        # also measurement (5)
    python benchmarks/bench_training.py --peers-only # only measurement (6) (--peers: also; ~1.5 min a round)
    python benchmarks/bench_training.py --parts      # only measurement (7) (about 30 s)
    python benchmarks/bench_training.py --adam default   # every method with Adam's default loop
"""
import argparse
import csv
import functools
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import peers  # beside this script (sys.path[0])
import torch
import torch.nn.functional as F
import torchbearer
from torch.utils.data import DataLoader, Subset

import torchbearer_vae
from torchbearer_vae import (
    VAE,
    AutoEncoderDataset,
    ConvVAE,
    ReconstructionSaver,
    TensorLoader,
    kld_loss,
    train_val_split,
)
from torchbearer_vae.compat import fused_adam_supported

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared', 'data', 'mnist')
TARGETS = {'(4)/(1)': ('<=', 1.20), '(2)/(4)': ('>=', 2.0), '(4)/(3)': ('<=', 1.05), '(5)/(1)': ('<=', 1.25),
           'ours/pythae': ('<=', 0.95), 'ours/Lightning': ('<=', 0.80), 'ours/same job': ('<=', 1.05),
           # the colour workload (--workload colour): compute dominates; ahead of the peers
           'colour ours/same job': ('<=', 1.03), 'colour ours/pythae': ('<', 1.0), 'colour ours/Lightning': ('<', 1.0)}
NAMES = {
    1: '(1) floor: bare PyTorch loop, float tensor, x[perm[i:i+128]]',
    2: '(2) PyTorch example: torchvision MNIST, PIL + ToTensor, DataLoader',
    3: '(3) bare torchbearer Trial over TensorLoader, no callbacks',
    4: '(4) torchbearer_vae: TensorLoader + kld_loss + ReconstructionSaver',
}


# -- memory: the peak resident set size. tracemalloc does not see tensors (torch allocates them in
# C), so this reads the kernel's counters; Linux lets a process reset its peak (clear_refs 5).
def reset_peak() -> bool:
    try:
        with open('/proc/self/clear_refs', 'w') as file:
            file.write('5')
        return True
    except OSError:
        return False


def _status_mb(field: str) -> float:
    try:
        with open('/proc/self/status') as file:
            for line in file:
                if line.startswith(field + ':'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux; never reset


def peak_rss_mb() -> float:
    return _status_mb('VmHWM')


def rss_mb() -> float:
    return _status_mb('VmRSS')


# -- the PyTorch example's pieces --
def example_loss(recon, x, mu, logvar):
    """The loss of the PyTorch VAE example: BCE summed over the batch plus the analytic KL."""
    bce = F.binary_cross_entropy(recon, x, reduction='sum')
    return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def trial_loss(recon, mu, logvar, target):
    """example_loss with torchbearer's argument order: the unpacked prediction, then the target."""
    return example_loss(recon, target, mu, logvar)


def torchvision_mnist(folder):
    """torchvision's own MNIST class over the shared IDX files.

    torchvision cannot download here and its reader wants uncompressed files, so only the loading
    of the two arrays is replaced (by torchbearer_vae.read_idx, which returns the same uint8 images
    and int64 labels). ``__getitem__`` -- a PIL image per item, then the transform -- is torchvision's
    unchanged, which is the per-item path the example pays for.
    """
    from torchvision import datasets, transforms

    class LocalMNIST(datasets.MNIST):
        def _check_legacy_exist(self):
            return False

        def _check_exists(self):
            return True

        def _load_data(self):
            return (torchbearer_vae.read_idx(os.path.join(folder, 't10k-images-idx3-ubyte.gz')),
                    torchbearer_vae.read_idx(os.path.join(folder, 't10k-labels-idx1-ubyte.gz')).long())

    return LocalMNIST(folder, train=False, transform=transforms.ToTensor())


class EpochTimer(torchbearer.callbacks.Callback):
    """Seconds of each epoch (training and validation, the pictures included)."""

    def __init__(self):
        self.seconds, self._start = [], None

    def on_start_epoch(self, state):
        self._start = time.perf_counter()

    def on_end_epoch(self, state):
        self.seconds.append(time.perf_counter() - self._start)


class FloorData:
    """The data of the floor loop (1): the split and its float tensors (all a floor child needs)."""

    def __init__(self, folder, batch_size, seed):
        self.batch_size, self.seed = batch_size, seed
        self.mnist = torchbearer_vae.IDXDataset.from_folder(folder)
        self.train, self.val = train_val_split(AutoEncoderDataset(self.mnist), val_fraction=0.1, seed=1)
        everything = self.mnist.data.unsqueeze(1).float().div(255)
        self.train_x, self.val_x = everything[list(self.train.ids)], everything[list(self.val.ids)]

    def model(self, use_state):
        return fresh_model(self.seed, use_state)


class ColourData:
    """The colour workload's data for the same-job floor: the patch folder decoded once to uint8 (counted in the
    process's time), split as the peers split it, and the ConvVAE the command builds for it."""

    def __init__(self, folder, batch_size, seed):
        self.batch_size, self.seed = batch_size, seed
        images = peers.decode_patches(folder)
        train, val = peers.patch_split(len(images))
        self.train_x, self.val_x = images[train], images[val]

    def model(self, use_state):
        torch.manual_seed(self.seed)
        model = ConvVAE((3, peers.PATCH_SIZE, peers.PATCH_SIZE), latent_dim=20, hidden_dim=256, likelihood='gaussian',
                        sigma=None, use_state=use_state)  # `train --model conv`'s settled options for colour images
        return model, torch.optim.Adam(model.parameters(), lr=1e-3, **ADAM)


class Setup(FloorData):
    """The data every method uses, prepared once."""

    def __init__(self, folder, batch_size, seed, out):
        super().__init__(folder, batch_size, seed)
        self.out = out
        mnist, train, val = self.mnist, self.train, self.val
        self.images, self.uint8 = len(mnist), mnist.data
        # (2): torchvision's dataset, the same items
        tv_mnist = torchvision_mnist(folder)
        self.tv_train, self.tv_val = Subset(tv_mnist, list(train.ids)), Subset(tv_mnist, list(val.ids))
        self.data_mb = {
            1: (self.train_x.nbytes + self.val_x.nbytes) / 2 ** 20,
            2: tv_mnist.data.nbytes / 2 ** 20,
            # the uint8 images, which both loaders share with the dataset, and each loader's indices
            3: (mnist.data.nbytes + 8 * self.images) / 2 ** 20,
        }
        self.data_mb[4] = self.data_mb[3]

    def loaders(self):
        return (TensorLoader(self.train, self.batch_size, shuffle=True, seed=self.seed),
                TensorLoader(self.val, self.batch_size))


# set from --adam: Adam's keyword arguments, the same for every method (fused where this torch has the CPU kernel,
# as the command's Adam is: torch 2.4 and later)
ADAM = {'fused': True} if fused_adam_supported('cpu') else {}


def fresh_model(seed, use_state):
    """The same VAE and Adam for every method: the same initial weights."""
    torch.manual_seed(seed)
    model = VAE(use_state=use_state)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3, **ADAM)


def validation_loss(model, x_val, size):
    """The example's loss per image over ``x_val``, in batches of ``size``, the model in eval mode, no gradients."""
    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(x_val), size):
            x = x_val[i:i + size]
            recon, mu, logvar = model(x)
            total += example_loss(recon, x, mu, logvar).item()
    return total / len(x_val)


# Each method is a generator that trains one epoch per next() and yields its seconds, so that the
# methods can take turns epoch by epoch: a burst of load on the machine hits all of them alike.
def as_float(x):
    """A batch as the model takes it: uint8 images converted as ``ToTensor`` converts them; float ones as they are."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x


def train_epoch(model, optimizer, x_train, size, generator, loss_of):
    """One epoch of the floor's loop over ``x_train`` in batches of ``size`` (a new order from ``generator``), the
    loss ``loss_of(model, recon, x, mu, logvar)``; returns the summed training loss."""
    model.train()
    train_loss, perm = 0.0, torch.randperm(len(x_train), generator=generator)
    for i in range(0, len(x_train), size):
        x = as_float(x_train[perm[i:i + size]])
        optimizer.zero_grad()
        recon, mu, logvar = model(x)
        loss = loss_of(model, recon, x, mu, logvar)
        loss.backward()
        optimizer.step()
        train_loss += loss.item()
    return train_loss


def floor_epochs(setup, losses=None):
    """The floor loop (1); appends each epoch's validation loss per image to ``losses`` if given."""
    model, optimizer = setup.model(use_state=False)
    generator = torch.Generator().manual_seed(setup.seed)
    x_train, x_val, size = setup.train_x, setup.val_x, setup.batch_size
    while True:
        start = time.perf_counter()
        train_epoch(model, optimizer, x_train, size, generator,
                    lambda model, recon, x, mu, logvar: example_loss(recon, x, mu, logvar))
        test_loss = validation_loss(model, x_val, size)
        if losses is not None:
            losses.append(test_loss)
        yield time.perf_counter() - start


def same_job_epochs(setup, out, losses=None):
    """The floor loop doing the command's job: the loss from the decoder's logits as the library computes it, and
    every epoch what ``torchbearer-vae train`` writes (the model and optimizer state saved to a temporary file and
    renamed, the reconstruction and sample grids, a CSV line) and its NaN check; appends the validation loss per
    image to ``losses`` if given."""
    from torchvision.utils import save_image

    from torchbearer_vae import kld

    model, optimizer = setup.model(use_state=False)
    generator = torch.Generator().manual_seed(setup.seed)
    x_train, x_val, size = setup.train_x, setup.val_x, setup.batch_size
    checkpoint, metrics = os.path.join(out, 'checkpoint.pt'), os.path.join(out, 'metrics.csv')
    with open(metrics, 'w') as file:
        file.write('epoch,loss,val_loss\n')
    def library_loss(model, recon, x, mu, logvar):  # from the decoder's logits, summed
        return model.reconstruction_loss(recon, x) + kld(mu, logvar)

    epoch = 0
    while True:
        start = time.perf_counter()
        epoch += 1
        train_loss = train_epoch(model, optimizer, x_train, size, generator, library_loss)
        if not math.isfinite(train_loss):
            raise FloatingPointError(f'the loss is {train_loss} in epoch {epoch}')
        model.eval()
        val_loss = 0.0
        with torch.no_grad():
            for i in range(0, len(x_val), size):
                x = as_float(x_val[i:i + size])
                recon, mu, logvar = model(x)
                val_loss += library_loss(model, recon, x, mu, logvar).item()
            shown = as_float(x_val[:8])
            recon = model.decode(model.encode(shown)[0])  # the decoder's mean, as the command's picture
            save_image(torch.cat([shown, recon]), os.path.join(out, f'reconstruction_{epoch:03d}.png'), nrow=8)
            save_image(model.sample(64), os.path.join(out, f'samples_{epoch:03d}.png'), nrow=8)
        val_loss /= len(x_val)
        temporary = checkpoint + '.tmp'
        torch.save({'model': model.state_dict(), 'optimizer': optimizer.state_dict(), 'epoch': epoch}, temporary)
        os.replace(temporary, checkpoint)
        with open(metrics, 'a') as file:
            file.write(f'{epoch},{train_loss / len(x_train)},{val_loss}\n')
        if losses is not None:
            losses.append(val_loss)
        yield time.perf_counter() - start


def example_epochs(setup):
    """The example's train() and test(), with its DataLoader (num_workers=0 on CPU, as in the example)."""
    from torchvision.utils import save_image

    model, optimizer = setup.model(use_state=False)
    generator = torch.Generator().manual_seed(setup.seed)
    train_loader = DataLoader(setup.tv_train, batch_size=setup.batch_size, shuffle=True, generator=generator)
    test_loader = DataLoader(setup.tv_val, batch_size=setup.batch_size, shuffle=False)
    epoch = 0
    while True:
        start = time.perf_counter()
        model.train()
        train_loss = 0.0
        for data, _ in train_loader:
            optimizer.zero_grad()
            recon, mu, logvar = model(data)
            loss = example_loss(recon, data, mu, logvar)
            loss.backward()
            optimizer.step()
            train_loss += loss.item()
        model.eval()
        test_loss = 0.0
        with torch.no_grad():
            for i, (data, _) in enumerate(test_loader):
                recon, mu, logvar = model(data)
                test_loss += example_loss(recon, data, mu, logvar).item()
                if i == 0:  # the example's picture: 8 inputs above their reconstructions
                    n = min(data.size(0), 8)
                    comparison = torch.cat([data[:n], recon.view(-1, 1, 28, 28)[:n]])
                    save_image(comparison.cpu(), os.path.join(setup.out, f'example_{epoch}.png'), nrow=n)
        epoch += 1
        yield time.perf_counter() - start


def trial_epochs(loaders, seed, out, full, models=None):
    """A Trial, one epoch per run() call: torchbearer continues from its history, and the timer
    counts from on_start_epoch to on_end_epoch, as in one long run. Appends the model to ``models`` if given."""
    timer = EpochTimer()
    model, optimizer = fresh_model(seed, use_state=full)
    if models is not None:
        models.append(model)
    if full:
        criterion = torch.nn.BCELoss(reduction='sum')
        callbacks = [kld_loss(), ReconstructionSaver(folder=out), timer]
    else:
        criterion, callbacks = trial_loss, [timer]
    trial = torchbearer.Trial(model, optimizer, criterion, metrics=['loss'], callbacks=callbacks, verbose=0)
    trial.with_generators(*loaders)
    epochs = 0
    while True:
        epochs += 1
        trial.run(epochs=epochs)
        yield timer.seconds[-1]


METHODS = {1: floor_epochs, 2: example_epochs,
           3: lambda setup: trial_epochs(setup.loaders(), setup.seed, setup.out, full=False),
           4: lambda setup: trial_epochs(setup.loaders(), setup.seed, setup.out, full=True)}


def compare(setup, epochs, repeats):
    """Interleaved epoch by epoch; per method the timed epochs, the peak RSS and its rise (MB)."""
    seconds, peaks, growth = {m: [] for m in METHODS}, {m: 0.0 for m in METHODS}, {m: 0.0 for m in METHODS}
    can_reset = reset_peak()
    for _ in range(repeats):
        runs = {method: start(setup) for method, start in METHODS.items()}  # a fresh model for each round
        for epoch in range(epochs):
            for method, run in runs.items():
                reset_peak()
                before = rss_mb()
                took = next(run)
                if epoch > 0:  # the first epoch of a run is a warm-up
                    seconds[method].append(took)
                peaks[method] = max(peaks[method], peak_rss_mb())
                growth[method] = max(growth[method], peak_rss_mb() - before)
    return seconds, peaks, growth, can_reset


def ratio_line(name, value, *, rounds=None, target=None):
    """``ratio NAME = value   target <= x   met``; with the rounds' ratios, their range; ``target``: the
    key of TARGETS when it is not ``name``."""
    spread = f' (rounds {min(rounds):.2f}-{max(rounds):.2f})' if rounds else ''
    if (target or name) not in TARGETS:
        return f'ratio {name} = {value:.2f}{spread}   (no target)'
    sense, limit = TARGETS[target or name]
    met = {'<=': value <= limit, '<': value < limit, '>=': value >= limit}[sense]
    return f'ratio {name} = {value:.2f}{spread}   target {sense} {limit:.2f}   {"met" if met else "MISSED"}'


# -- the scale check: (4) on the first N images --
def first_images_loaders(images, batch_size, seed):
    train, val = train_val_split(AutoEncoderDataset(images), val_fraction=0.1, seed=1)
    return TensorLoader(train, batch_size, shuffle=True, seed=seed), TensorLoader(val, batch_size)


def scale_child(folder, size, epochs, batch_size, seed):
    """Peak memory of (4) on N images, in a process of its own; prints it as JSON."""
    import torchvision.utils  # noqa: F401  (ReconstructionSaver's import, done before the baseline)

    start_mb = rss_mb()
    mnist = torchbearer_vae.IDXDataset.from_folder(folder)
    images = mnist.data[:size].clone()  # only N images stay in memory
    del mnist
    reset_peak()  # the peak of training, not of reading the file
    with tempfile.TemporaryDirectory() as out:
        run = trial_epochs(first_images_loaders(images, batch_size, seed), seed, out, full=True)
        for _ in range(epochs):
            next(run)
    print(json.dumps({'peak_mb': peak_rss_mb() - start_mb, 'data_mb': images.nbytes / 2 ** 20}))


def child_command(args, *mode, data=None):
    """This script run again in a child process, with the parent's data (or ``data``), batch, seed, threads and
    Adam."""
    command = [sys.executable, os.path.abspath(__file__), '--data', data or args.data,
               '--batch-size', str(args.batch_size),
               '--seed', str(args.seed), '--adam', args.adam, *mode]
    return command + (['--threads', str(args.threads)] if args.threads else [])


def scale(args, setup, sizes):
    """Time per image, interleaved epoch by epoch in this process; memory from one child per size."""
    seconds = {size: [] for size in sizes}
    for _ in range(args.repeats):
        runs = {size: trial_epochs(first_images_loaders(setup.uint8[:size], args.batch_size, args.seed), args.seed,
                                   setup.out, full=True) for size in sizes}
        for epoch in range(args.epochs):
            for size, run in runs.items():
                took = next(run)
                if epoch > 0:
                    seconds[size].append(took)
    memory = {}
    for size in sizes:
        command = child_command(args, '--epochs', '2', '--scale-child', str(size))
        # glibc: a fixed mmap threshold hands every large freed block back to the system at once, so
        # that the resident memory follows the live tensors, not the allocator's caches (this slows
        # the allocations down, which is why the time is measured here, not in the child)
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='131072')
        memory[size] = json.loads(subprocess.run(command, check=True, capture_output=True, text=True,
                                                 env=env).stdout)
    lines = ['scale: (4) on the first N images (90% train, 10% validation); peak RSS + = how far the peak '
             'resident memory during training rose above a fresh process after its imports (the images included)']
    for size in sizes:
        median = statistics.median(seconds[size])
        lines.append(f'scale {size:>6,} images: {median:.3f} s/epoch  {1e6 * median / size:.1f} us/image  '
                     f'uint8 data {memory[size]["data_mb"]:.2f} MB  peak RSS +{memory[size]["peak_mb"]:.1f} MB')
    small, large = min(sizes), max(sizes)
    per_image = [statistics.median(seconds[size]) / size for size in (small, large)]
    extra = memory[large]['peak_mb'] - memory[small]['peak_mb']
    beyond = memory[small]['peak_mb'] - memory[small]['data_mb']
    # least squares: seconds per epoch = fixed + per_image * N
    medians = [statistics.median(seconds[size]) for size in sizes]
    mean_n, mean_t = statistics.fmean(sizes), statistics.fmean(medians)
    slope = (sum((n - mean_n) * (t - mean_t) for n, t in zip(sizes, medians))
             / sum((n - mean_n) ** 2 for n in sizes))
    lines.append(f'scale: time fit {1e6 * slope:.1f} us per image + {1e3 * (mean_t - slope * mean_n):.1f} ms per '
                 f'epoch; time per image at {large:,} / at {small:,} = {per_image[1] / per_image[0]:.2f}')
    lines.append(f'scale: peak RSS grows {extra * 2 ** 20 / (large - small):.0f} bytes per image (a uint8 MNIST '
                 f'image is 784 bytes, float32 3,136); + {beyond:.1f} MB at {small:,} beyond the images')
    return lines


# -- measurement (5): the command line, in a subprocess --
def cli_seconds(args, epochs):
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, '-m', 'torchbearer_vae', 'train', '--dataset', f'idx:{args.data}',
                   '--epochs', str(epochs), '--out', os.path.join(out, 'run'), '--quiet', '--seed', '1']
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ['(no message)'])[-1]
        raise RuntimeError(f'`torchbearer-vae train` failed (exit {done.returncode}): {last}')
    return seconds


def floor_child(folder, epochs, batch_size, seed):
    """The floor loop (1) for some epochs in a process of its own; prints as JSON the timed epochs (the
    first is a warm-up) and the validation loss per image after the last."""
    losses = []
    run = floor_epochs(FloorData(folder, batch_size, seed), losses)
    seconds = [next(run) for _ in range(epochs)][1:]
    print(json.dumps({'seconds': seconds, 'val_loss': losses[-1]}))


def same_job_child(folder, epochs, batch_size, seed, workload='mnist'):
    """The same-job floor for some epochs in a process of its own, writing into a temporary folder; prints as JSON
    the timed epochs (the first is a warm-up) and the validation loss per image after the last. ``folder``: the MNIST
    IDX files, or for the colour workload the patch folder."""
    losses = []
    data = ColourData if workload == 'colour' else FloorData
    with tempfile.TemporaryDirectory() as out:
        run = same_job_epochs(data(folder, batch_size, seed), out, losses)
        seconds = [next(run) for _ in range(epochs)][1:]
    print(json.dumps({'seconds': seconds, 'val_loss': losses[-1]}))


def trial_child(folder, epochs, batch_size, seed):
    """The bare torchbearer Trial (3) for some epochs in a process of its own, on the floor's split; prints as JSON
    the timed epochs (the first is a warm-up) and the validation loss per image after the last."""
    data, models = FloorData(folder, batch_size, seed), []
    loaders = (TensorLoader(data.train, batch_size, shuffle=True, seed=seed), TensorLoader(data.val, batch_size))
    run = trial_epochs(loaders, seed, None, full=False, models=models)
    seconds = [next(run) for _ in range(epochs)][1:]
    print(json.dumps({'seconds': seconds, 'val_loss': validation_loss(models[0], data.val_x, batch_size)}))


def floor_seconds(args):
    """The floor's epochs, measured in a child process between the command's runs (see cli)."""
    command = child_command(args, '--floor-child', str(args.cli_epochs))
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)['seconds']


def cli(args, floor):
    """(5) against the floor measured alongside it. Each round runs the command for 1 epoch, the floor
    for E epochs in a child process, and the command for E epochs, one after the other, and gives its
    own ratio: this machine has slower spells lasting seconds, and a round's three runs mostly share
    one. The figure is the median of the rounds' ratios."""
    epochs = args.cli_epochs
    one, many, floors = [], [], []
    try:
        for _ in range(args.cli_rounds):
            one.append(cli_seconds(args, 1))
            floors.append(statistics.median(floor_seconds(args)))
            many.append(cli_seconds(args, epochs))
    except RuntimeError as error:
        return [f'(5) skipped: {error}']
    per_epoch = (statistics.median(many) - statistics.median(one)) / (epochs - 1)
    # each round's own estimate, to show the spread (a process's start-up varies by ~0.1-0.2 s), and its ratio
    rounds = [(m - o) / (epochs - 1) for o, m in zip(one, many)]
    ratios = [estimate / floor_now for estimate, floor_now in zip(rounds, floors)]
    return [f'(5) torchbearer-vae train: {statistics.median(one):.2f} s for 1 epoch, {statistics.median(many):.2f} s '
            f'for {epochs} (medians of {len(one)}): {per_epoch:.3f} s/epoch '
            f'(rounds {min(rounds):.3f}-{max(rounds):.3f})',
            f'(1) floor in a child process between those runs: {statistics.median(floors):.3f} s/epoch (rounds '
            f'{min(floors):.3f}-{max(floors):.3f}; {floor:.3f} in the comparison above)',
            '(5)/(1) per round: ' + ' '.join(f'{ratio:.2f}' for ratio in ratios),
            ratio_line('(5)/(1)', statistics.median(ratios))]


def cli_interleaved(args, rounds=20):
    """(5) cross-checked in this process: the command's own Trial (built by its code, with every
    callback and file), one ``run`` call per epoch in turn with one floor epoch, each pair a ratio.
    A ``run`` call also waits for the epoch's files at its end, which a real run overlaps with the
    next epoch, so this errs on the slow side; it does not see a process's start-up at all."""
    from torchbearer_vae.cli import train
    from torchbearer_vae.cli.main import build_parser
    from torchbearer_vae.cli.processes import Processes

    floor = floor_epochs(FloorData(args.data, args.batch_size, args.seed))
    with tempfile.TemporaryDirectory() as out:
        command = build_parser().parse_args(['train', '--dataset', f'idx:{args.data}', '--out',
                                             os.path.join(out, 'run'), '--quiet', '--seed', '1'])
        processes = Processes(command.device)
        try:
            trial = train._build_training(command, processes).trial
            cli_times, floor_times = [], []
            for epoch in range(1, rounds + 2):
                floor_times.append(next(floor))
                start = time.perf_counter()
                trial.run(epochs=epoch)  # torchbearer continues: one more epoch
                cli_times.append(time.perf_counter() - start)
        finally:
            processes.leave(together=True)
    pairs = [c / f for c, f in zip(cli_times[1:], floor_times[1:])]  # the first epochs are warm-ups
    return [f'(5) interleaved in this process: {statistics.median(cli_times[1:]):.3f} s/epoch against the floor\'s '
            f'{statistics.median(floor_times[1:]):.3f} ({rounds} pairs; pair ratios {min(pairs):.2f}-{max(pairs):.2f})',
            ratio_line('(5)/(1)', statistics.median(pairs)) + '   (interleaved cross-check)']




# -- measurement (7), --parts: where the command's epoch goes, part by part, in this process --
def _timed(spent, label, method):
    """``method``, adding the seconds each call takes to ``spent[label]``."""
    @functools.wraps(method)
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            spent[label] += time.perf_counter() - start
    return timed


def _part_name(callback):
    """A callback's name in (7): its class, and the chart a schedule wrapper (OnSomeEpochs) draws."""
    inner = getattr(callback, 'callback', None)
    return type(callback).__name__ + (f'({type(inner).__name__})' if inner is not None else '')


PER_RUN = 'the per-run hooks (on_start, on_end: waiting for the files), paid once a run'


def parts(args, rounds=10):
    """(7): the command's own Trial (MNIST, as ``train --quiet`` builds it, every callback and file) for ``rounds``
    epochs after a warm-up, each in turn with an epoch of the same-job floor (1j), in this process; each callback's
    hooks, torchbearer's metric pass and the copy of the state it makes for it at every step (``State.data``) timed
    by wrapping them. ``rounds`` epochs after the first include one drawing of the latent charts (every 10 epochs),
    as the 11-epoch runs of (6) do. An epoch here is a ``run`` call, whose ``on_end`` waits for the files: those
    per-run hooks are reported apart (a run pays them once). Returns the lines to print."""
    from collections import Counter

    from torchbearer.state import State

    from torchbearer_vae.cli import train
    from torchbearer_vae.cli.main import build_parser
    from torchbearer_vae.cli.processes import Processes

    spent = Counter()
    copy = State.data
    with tempfile.TemporaryDirectory() as out:
        same_job = same_job_epochs(FloorData(args.data, args.batch_size, args.seed), out)
        command = build_parser().parse_args(['train', '--dataset', f'idx:{args.data}', '--out',
                                             os.path.join(out, 'run'), '--quiet', '--seed', '1',
                                             '--epochs', str(rounds + 10)])  # no last epoch (and its prior) in sight
        processes = Processes(command.device)
        try:
            trial = train._build_training(command, processes).trial
            command_times, floor_times = [], []
            for epoch in range(1, rounds + 2):
                if epoch == 2:  # after the warm-up: every hook, the metric pass and the state copy
                    for callback in trial.state[torchbearer.CALLBACK_LIST].callback_list:
                        for hook in [name for name in dir(callback) if name.startswith('on_')]:
                            label = PER_RUN if hook in ('on_init', 'on_start', 'on_end') else _part_name(callback)
                            setattr(callback, hook, _timed(spent, label, getattr(callback, hook)))
                    metrics = trial.state[torchbearer.METRIC_LIST]
                    for method in ('process', 'process_final', 'reset'):
                        setattr(metrics, method, _timed(spent, "torchbearer's metric pass", getattr(metrics, method)))
                    State.data = property(_timed(spent, 'State.data (the state copy for the metrics)', copy.fget))
                floor_times.append(next(same_job))
                start = time.perf_counter()
                trial.run(epochs=epoch)  # torchbearer continues: one more epoch
                command_times.append(time.perf_counter() - start)
        finally:
            State.data = copy
            processes.leave(together=True)
    pairs = [c / f for c, f in zip(command_times[1:], floor_times[1:])]
    mean_epoch = statistics.mean(command_times[1:])
    command_epoch = statistics.median(command_times[1:])
    floor_epoch = statistics.median(floor_times[1:])
    ratio = statistics.median(pairs)
    lines = [f"(7) the command's epoch part by part, in this process: its own Trial {command_epoch:.3f} s/epoch "
             f"against the same-job floor's {floor_epoch:.3f} ({rounds} pairs after a warm-up, in turn); ratio "
             f'{ratio:.2f} (pairs {min(pairs):.2f}-{max(pairs):.2f}); ms per epoch of an epoch of '
             f'{1000 * mean_epoch:.0f} ms (mean):']
    per_run = spent.pop(PER_RUN, 0.0)  # here at every run call: one an epoch
    lines += [f'  {label:<72} {1000 * seconds / rounds:6.1f}' for label, seconds in spent.most_common()]
    rest = "the rest: the loaders, forward, loss, backward, Adam, torchbearer's loop"
    lines.append(f'  {rest:<72} {1000 * (mean_epoch - (sum(spent.values()) + per_run) / rounds):6.1f}')
    lines.append(f'  not in the epoch: {PER_RUN}, here at each of the {rounds} run calls: '
                 f'{1000 * per_run / rounds:.1f} ms each')
    return lines


# -- measurement (6), --peers: whole processes of our command, the peers and the floor --
def _last_line_json(done, out):
    return json.loads(done.stdout.strip().splitlines()[-1])['val_loss']


def _ours_val_loss(done, out):
    with open(os.path.join(out, 'run', 'metrics.csv')) as file:
        return float(list(csv.DictReader(file))[-1]['val_loss'])


def peer_methods(args, split):
    """The methods of (6), each ``name: (label, command(epochs, out), val_loss(done, out))``, and a line
    for each method left out (a peer not installed, our command without ``--compile``)."""
    def ours(*extra):
        return lambda epochs, out: [sys.executable, '-m', 'torchbearer_vae', 'train', '--dataset', f'idx:{args.data}',
                                    '--epochs', str(epochs), '--out', os.path.join(out, 'run'), '--quiet',
                                    '--seed', '1', *extra]

    def peer(name):
        script = os.path.abspath(peers.__file__)
        return lambda epochs, out: [sys.executable, script, name, '--split', split, '--epochs', str(epochs),
                                    '--out', out, '--seed', str(args.seed), '--adam', args.adam]

    methods = {
        'floor': ('(1) floor: bare loop, whole process', lambda epochs, out: child_command(
            args, '--floor-child', str(epochs)), _last_line_json),
        'same job': ("(1j) floor doing the command's job, whole process", lambda epochs, out: child_command(
            args, '--same-job-child', str(epochs)), _last_line_json),
        'Trial': ('(3) bare torchbearer Trial, whole process', lambda epochs, out: child_command(
            args, '--trial-child', str(epochs)), _last_line_json),
        'ours': ('ours: torchbearer-vae train --quiet', ours(), _ours_val_loss),
        'ours --compile': ('ours: torchbearer-vae train --quiet --compile', ours('--compile'), _ours_val_loss),
        'pythae': ('pythae: TrainingPipeline (peers.py)', peer('pythae'), _last_line_json),
        'Lightning': ('Lightning: Trainer (peers.py)', peer('lightning'), _last_line_json)}
    return methods, _leave_out(methods)


def colour_methods(args, folder, cache):
    """The methods of (6) on the colour workload (the ConvVAE on the patch folder ``folder``), as
    :func:`peer_methods` gives them; our command keeps its decoded images in ``cache`` (``--cache-dir``), which
    the warm-up run fills, as a user's first run does."""
    def ours(*extra):
        return lambda epochs, out: [sys.executable, '-m', 'torchbearer_vae', 'train', '--dataset', f'folder:{folder}',
                                    '--model', 'conv', '--epochs', str(epochs), '--out', os.path.join(out, 'run'),
                                    '--quiet', '--seed', '1', '--cache-dir', cache, *extra]

    def peer(name):
        script = os.path.abspath(peers.__file__)
        return lambda epochs, out: [sys.executable, script, f'{name}-conv', '--folder', folder, '--epochs',
                                    str(epochs), '--out', out, '--seed', str(args.seed), '--adam', args.adam]

    methods = {
        'same job': ("(1j) floor doing the command's job, whole process", lambda epochs, out: child_command(
            args, '--same-job-child', str(epochs), '--workload', 'colour', data=folder), _last_line_json),
        'ours': ('ours: torchbearer-vae train --model conv --quiet', ours(), _ours_val_loss),
        'ours --compile': ('ours: ... --model conv --quiet --compile', ours('--compile'), _ours_val_loss),
        'pythae': ('pythae: TrainingPipeline (peers.py)', peer('pythae'), _last_line_json),
        'Lightning': ('Lightning: Trainer, ImageFolder (peers.py)', peer('lightning'), _last_line_json)}
    return methods, _leave_out(methods)


def _leave_out(methods):
    """Takes out of ``methods`` what cannot run here (a peer not installed, a command without ``--compile``);
    returns a line for each."""
    left_out = []
    usage = subprocess.run([sys.executable, '-m', 'torchbearer_vae', 'train', '--help'], capture_output=True, text=True)
    if '--compile' not in usage.stdout:
        del methods['ours --compile']
        left_out.append('ours --compile: skipped, `torchbearer-vae train --help` lists no --compile flag')
    for name in peers.PEERS:
        missing = peers.missing_peer(name)
        if missing:
            del methods[name]
            left_out.append(missing)
    return left_out


def run_process(command, val_loss, env):
    """A method's whole process: its seconds (start-up included) and its validation loss per image."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        done = subprocess.run(command(out), capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ['(no message)'])[-1]
            raise RuntimeError(f'exit {done.returncode}: {last}')
        return seconds, val_loss(done, out)


def peer_rounds(methods, *, epochs, rounds, env):
    """Every method once for 1 epoch, untimed (the first process to import a library reads it from the
    disk: 4-8 s more), then round by round each method for 1 and for ``epochs`` epochs, in an order
    rotated every round. Returns each method's per-round seconds ``{1: [...], epochs: [...]}``, its
    last validation loss, and a line for each method that failed (left out from then on)."""
    seconds = {name: {1: [], epochs: []} for name in methods}
    losses, failed = {}, []
    names = list(methods)
    plan = [('warm-up', names, (1,))] + [(f'round {index + 1}', names[index % len(names):] + names[:index % len(names)],
                                          (1, epochs)) for index in range(rounds)]
    for when, order, counts in plan:
        for name in [name for name in order if name in methods]:
            _, command, val_loss = methods[name]
            try:
                for count in counts:
                    took, losses[name] = run_process(functools.partial(command, count), val_loss, env)
                    if when != 'warm-up':
                        seconds[name][count].append(took)
            except RuntimeError as error:
                failed.append(f'{name}: failed in the {when}, left out ({error})')
                del methods[name], seconds[name]
    return seconds, losses, failed


def peers_measurement(args):
    """(6) on ``--workload``'s workloads, one after the other (``all``: MNIST, then colour)."""
    workloads = ('mnist', 'colour') if args.workload == 'all' else (args.workload,)
    return [line for workload in workloads for line in workload_measurement(args, workload)]


def workload_measurement(args, workload):
    """(6): our command against pythae, Lightning and the floors, whole processes, interleaved rounds: on MNIST,
    or (``workload='colour'``) the ConvVAE on 10,000 colour patches."""
    colour = workload == 'colour'
    epochs = args.peer_epochs or (5 if colour else 11)
    # torch's threads: the same for every process (the floor child also takes --threads)
    env = dict(os.environ, **({'OMP_NUM_THREADS': str(args.threads)} if args.threads else {}))
    with tempfile.TemporaryDirectory() as folder:
        if colour:
            images = os.path.join(folder, 'images')
            started = time.perf_counter()
            peers.write_patches(images)
            written = time.perf_counter() - started
            methods, left_out = colour_methods(args, images, os.path.join(folder, 'cache'))
            lines = [f'colour workload: {peers.PATCHES:,} PNG patches {peers.PATCH_SIZE}x{peers.PATCH_SIZE} of '
                     f"scikit-learn's sample photographs (written in {written:.1f} s), 9,000 train + 1,000 "
                     f'validation, batch {args.batch_size}; the ConvVAE (`--model conv`)']
        else:
            split = os.path.join(folder, 'split.pt')
            peers.write_split(args.data, split)
            methods, left_out = peer_methods(args, split)
            lines = []
        labels = {name: label for name, (label, _, _) in methods.items()}
        seconds, losses, failed = peer_rounds(methods, epochs=epochs, rounds=args.peer_rounds, env=env)
    lines += [f'(6) whole processes, {args.peer_rounds} rounds, the order rotated every round; per epoch = '
              f'(t({epochs} epochs) - t(1 epoch)) / {epochs - 1}; ranges over the rounds'] + left_out + failed
    per_epoch = {name: [(many - one) / (epochs - 1) for one, many in zip(times[1], times[epochs])]
                 for name, times in seconds.items()}
    unit = 'loss/image (each library\'s own)' if colour else 'nats/image'
    for name, estimates in per_epoch.items():
        one = seconds[name][1]
        lines.append(f'{labels[name]:<46} {statistics.median(estimates):.3f} s/epoch ({min(estimates):.3f}-'
                     f'{max(estimates):.3f})   1 epoch: {statistics.median(one):.1f} s ({min(one):.1f}-{max(one):.1f})'
                     f'   validation {losses[name]:.1f} {unit} after {epochs}')
    for ours in ('ours', 'ours --compile'):
        for other in ('pythae', 'Lightning', 'same job', 'floor', 'Trial'):
            if ours in per_epoch and other in per_epoch:
                pairs = list(zip(per_epoch[ours], per_epoch[other]))
                # a process slowed by a burst of other work can make t(E) - t(1) <= 0: no estimate at all
                ratios = [mine / theirs for mine, theirs in pairs if mine > 0 and theirs > 0]
                if not ratios:
                    lines.append(f'ratio {ours}/{other}: no round to compute it from (t({epochs}) <= t(1)); run again')
                    continue
                # the targets are the command's as a user runs it; --compile is reported beside it
                target = ('colour ' if colour else '') + f'ours/{other}' if ours == 'ours' else 'none'
                line = ratio_line(f'{ours}/{other}', statistics.median(ratios), rounds=ratios, target=target)
                lines.append(line + '   per round: ' + ' '.join(f'{ratio:.2f}' for ratio in ratios))
                if len(ratios) < len(pairs):
                    lines[-1] += f'   ({len(pairs) - len(ratios)} round(s) left out: t({epochs}) <= t(1))'
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data', default=os.path.normpath(DATA), help='folder with the MNIST IDX files')
    parser.add_argument('--epochs', type=int, default=5, help='epochs per run, the first one untimed (default: 5)')
    parser.add_argument('--repeats', type=int, default=3, help='interleaved rounds of runs (default: 3)')
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=0, help='torch.set_num_threads (default: torch\'s choice)')
    parser.add_argument('--quick', action='store_true', help='3 epochs per run x 1 round')
    parser.add_argument('--no-scale', action='store_true', help='skip the scale check')
    parser.add_argument('--cli', action='store_true', help='also measurement (5): `torchbearer-vae train`')
    parser.add_argument('--cli-epochs', type=int, default=11, help='E for measurement (5) (default: 11)')
    parser.add_argument('--cli-rounds', type=int, default=5, help='rounds of measurement (5) (default: 5)')
    parser.add_argument('--peers', action='store_true', help='also measurement (6): pythae and Lightning (about '
                        '1.5 minutes a round on 2 cores)')
    parser.add_argument('--peers-only', action='store_true', help='only measurement (6)')
    parser.add_argument('--peer-epochs', type=int, default=0, help='E for measurement (6) (default: 11 on MNIST, 5 '
                        'on the colour workload)')
    parser.add_argument('--workload', choices=('mnist', 'colour', 'all'), default='mnist',
                        help="(6)'s workload: the VAE on MNIST (default), the ConvVAE on 10,000 colour patches, or "
                             "both, one after the other")
    parser.add_argument('--peer-rounds', type=int, default=3, help='rounds of measurement (6) (default: 3)')
    parser.add_argument('--parts', action='store_true', help="only measurement (7): the command's epoch part by "
                        "part, in this process, beside the same-job floor (about 30 s)")
    parser.add_argument('--adam', choices=('fused', 'default'), default='fused',
                        help="every method's optimizer: Adam(fused=True), which `torchbearer-vae train` uses "
                             "(default), or Adam's default per-parameter loop")
    parser.add_argument('--scale-child', type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument('--floor-child', type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument('--trial-child', type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument('--same-job-child', type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.cli_epochs, args.peer_epochs = 3, 3, 3
        args.repeats, args.cli_rounds, args.peer_rounds = 1, 1, 1
    if min(args.epochs, args.cli_epochs, args.peer_epochs or 2) < 2 or min(args.repeats, args.cli_rounds,
                                                                       args.peer_rounds) < 1:
        parser.error('--epochs, --cli-epochs and --peer-epochs must be >= 2 (an epoch is timed against the first), '
                     '--repeats, --cli-rounds and --peer-rounds >= 1')
    if args.threads:
        torch.set_num_threads(args.threads)
    ADAM.clear()
    ADAM.update({'fused': True} if args.adam == 'fused' and fused_adam_supported('cpu') else {})
    if args.scale_child:
        return scale_child(args.data, args.scale_child, args.epochs, args.batch_size, args.seed)
    if args.floor_child:
        return floor_child(args.data, args.floor_child, args.batch_size, args.seed)
    if args.trial_child:
        return trial_child(args.data, args.trial_child, args.batch_size, args.seed)
    if args.same_job_child:
        return same_job_child(args.data, args.same_job_child, args.batch_size, args.seed, args.workload)

    print(f'torchbearer_vae {torchbearer_vae.__version__}, torch {torch.__version__}, torchbearer '
          f'{torchbearer.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, '
          f'load average {os.getloadavg()[0]:.2f}; every method with Adam(lr=1e-3'
          + ''.join(f', {key}={value}' for key, value in ADAM.items()) + ')')
    if args.parts:
        for line in parts(args, rounds=3 if args.quick else 10):
            print(line)
        return print(f'load average at the end {os.getloadavg()[0]:.2f}')
    if args.peers_only:
        for line in peers_measurement(args):
            print(line)
        return print(f'load average at the end {os.getloadavg()[0]:.2f}')
    with tempfile.TemporaryDirectory() as out:
        setup = Setup(args.data, args.batch_size, args.seed, out)
        print(f'MNIST {setup.images:,} images: {len(setup.train):,} train + {len(setup.val):,} validation per '
              f'epoch, batch {args.batch_size}, {args.epochs} epochs per run (first untimed) x {args.repeats} '
              f'interleaved rounds')
        seconds, peaks, growth, can_reset = compare(setup, args.epochs, args.repeats)
        scale_lines = [] if args.no_scale else scale(args, setup, (2500, 5000, 10000))
    median = {method: statistics.median(values) for method, values in seconds.items()}
    print('memory: data = the tensors the path keeps; peak RSS = ' + (
        "the process's peak resident memory during the run (VmHWM, reset before each run; torch's "
        'libraries alone are most of it), + how far it rose above the resident memory at the start of the run'
        if can_reset else "the process's peak resident memory (ru_maxrss, never reset: the same for all)"))
    for method in METHODS:
        print(f'{NAMES[method]:<68} {median[method]:.3f} s/epoch  {setup.images / median[method]:>6,.0f} images/s  '
              f'data {setup.data_mb[method]:4.1f} MB  peak RSS {peaks[method]:.0f} MB (+{growth[method]:.1f})')
    print(ratio_line('(4)/(1)', median[4] / median[1]))
    print(ratio_line('(2)/(4)', median[2] / median[4]))
    print(ratio_line('(4)/(3)', median[4] / median[3]))
    for line in scale_lines:
        print(line)
    if args.cli:
        for line in cli(args, median[1]) + cli_interleaved(args, rounds=5 if args.quick else 20):
            print(line)
    if args.peers:
        for line in peers_measurement(args):
            print(line)
    print(f'load average at the end {os.getloadavg()[0]:.2f}')


if __name__ == '__main__':
    main()
