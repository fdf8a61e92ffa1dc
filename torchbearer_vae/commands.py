"""What each ``torchbearer-vae`` sub-command does; :mod:`torchbearer_vae.cli` parses the arguments."""
import dataclasses
import gc
import json
import os
import platform
import sys
import time

import torch
import torch.nn.functional as F
import torchbearer
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Subset
from torchbearer import Trial

from ._io import remove_stale_temporaries
from .callbacks import ReconstructionSaver, SampleSaver
from .checkpoints import Checkpointer, CheckpointError, load_checkpoint, load_model_state, model_from_checkpoint
from .cli import _DEFAULTS, _RUN_OPTIONS, CommandError
from .datasets import AutoEncoderDataset, IDXDataset, ImageDataset, load_digits, load_mnist, train_val_split
from .distributed import ReduceMetrics
from .evaluation import importance_weighted_nll, negative_elbo
from .guards import NaNGuard
from .loaders import TensorLoader
from .losses import kld_loss
from .models import VAE
from .records import MetricsCSV, plot_history, write_json
from .version import __version__

__all__ = []  # internal: the public entry point is torchbearer_vae.cli.main

CHECKPOINT, SUMMARY, METRICS = 'checkpoint.pt', 'summary.json', 'metrics.csv'


def _run_name(dataset) -> str:
    """runs/<this>: the dataset's name, or the IDX folder's."""
    if dataset is None or not dataset.startswith('idx:'):
        return dataset or 'mnist'
    return os.path.basename(os.path.normpath(dataset[len('idx:'):])) or 'idx'


def _bce_per_image(recon, target):
    """Bernoulli reconstruction loss in nats per image (summed over pixels, averaged over the batch)."""
    return F.binary_cross_entropy(recon, target, reduction='sum') / recon.shape[0]


def _device(name: str) -> torch.device:
    if name == 'cuda' and not torch.cuda.is_available():
        raise CommandError('--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto')
    if name == 'auto':
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    return torch.device(name)


def load_dataset(name, data_dir, limit=None) -> ImageDataset:
    """The images of ``--dataset`` (an :class:`ImageDataset`), the first ``limit`` of them if given."""
    data_dir = data_dir or _DEFAULTS['data_dir']
    try:
        if name is None or name in ('mnist', 'fashion-mnist'):
            dataset = load_mnist(data_dir, train=True, fashion=name == 'fashion-mnist')
        elif name == 'digits':
            dataset = load_digits()
        else:
            dataset = IDXDataset.from_folder(name[len('idx:'):])
    except (RuntimeError, FileNotFoundError, ValueError) as error:
        hint = ("; or try --dataset digits (scikit-learn's 8x8 digits, no download) or --dataset idx:DIR"
                if name in (None, 'mnist', 'fashion-mnist') else '')
        raise CommandError(f'{error}{hint}') from None
    if limit is not None and limit < len(dataset):
        dataset = ImageDataset(dataset.data[:limit], dataset.targets[:limit])
    return dataset


def _run_options(args, checkpoint):
    """The run's options: the command line's, or, when resuming, the checkpoint's (which must agree)."""
    given = {name: getattr(args, name) for name in _RUN_OPTIONS}
    if checkpoint is None:
        return {name: _DEFAULTS[name] if value is None else value for name, value in given.items()}
    saved = checkpoint['options']
    conflicts = [f'--{name.replace("_", "-")} {value} (the run used {saved[name]})'
                 for name, value in given.items() if value is not None and value != saved[name]]
    if conflicts:
        raise CommandError(f'--resume continues the run with the options it started with; got {", ".join(conflicts)}.'
                           f' Start a new run in another --out to change them')
    return dict(saved)


def _prepare_out(out, resume):
    """Check --out before any work: a folder (or nothing yet), and no run to overwrite by mistake."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise CommandError(f'--out {out!r} is a file; give a folder for the run')
    checkpoint_path = os.path.join(out, CHECKPOINT)
    if resume:
        return load_checkpoint(checkpoint_path)
    if os.path.exists(checkpoint_path):
        raise CommandError(f'{out!r} already holds a run ({CHECKPOINT}); pass --resume to continue it or choose '
                           f'another --out')
    return None


class _Processes:
    """The processes training together: this one alone, or the ``WORLD_SIZE`` ones torchrun started.

    Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) every process runs ``train``: it
    joins the default process group (``env://``: ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
    ``MASTER_PORT``), with NCCL on its own GPU (``cuda:LOCAL_RANK``) or gloo on the CPU.
    """

    def __init__(self, device_name: str):
        self.rank, self.world_size, self.local_rank, self.joined = 0, 1, 0, False
        try:
            world_size = int(os.environ.get('WORLD_SIZE', '1'))
            local_rank = int(os.environ.get('LOCAL_RANK', '0'))
        except ValueError:
            raise CommandError(f"WORLD_SIZE and LOCAL_RANK must be whole numbers (torchrun sets them), got "
                               f"WORLD_SIZE={os.environ.get('WORLD_SIZE')!r}, "
                               f"LOCAL_RANK={os.environ.get('LOCAL_RANK')!r}") from None
        self.device = _device(device_name)
        if world_size <= 1:
            return
        self.local_rank = local_rank
        dist = torch.distributed
        if not dist.is_available():
            raise CommandError(f'WORLD_SIZE={world_size} asks for distributed training, but this PyTorch has no '
                               f'torch.distributed')
        if self.device.type == 'cuda':
            if local_rank >= torch.cuda.device_count():
                raise CommandError(f'process {local_rank} of this machine has no GPU of its own (there are '
                                   f'{torch.cuda.device_count()}): start at most one process per GPU '
                                   f'(torchrun --nproc_per_node) or use --device cpu')
            self.device = torch.device('cuda', local_rank)
            torch.cuda.set_device(self.device)
        if not dist.is_initialized():  # else a program calling this joined already, and leaves itself
            try:
                dist.init_process_group('nccl' if self.device.type == 'cuda' else 'gloo')
            except (RuntimeError, ValueError) as error:
                raise CommandError(f"could not join the {world_size} processes (MASTER_ADDR="
                                   f"{os.environ.get('MASTER_ADDR')}, MASTER_PORT={os.environ.get('MASTER_PORT')}): "
                                   f"{error}") from None
            self.joined = True
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()

    def from_rank_0(self, work):
        """``work()`` done by rank 0 alone, its result (or its one-line error) given to every rank.

        What touches ``--out`` happens on rank 0 only: on several machines, only rank 0's has the run.
        """
        if self.world_size == 1:
            return work()
        box = [None]
        if self.rank == 0:
            try:
                box = [(work(), None)]
            except (CommandError, CheckpointError) as error:
                box = [(None, error)]
        torch.distributed.broadcast_object_list(box, src=0)
        result, error = box[0]
        if error is not None:
            raise error  # on every rank, so that none waits for the others (each prints the same line)
        return result

    def gather(self, value) -> list:
        """``value`` of every rank, in rank order."""
        if self.world_size == 1:
            return [value]
        values = [None] * self.world_size
        torch.distributed.all_gather_object(values, value)
        return values

    def barrier(self):
        """Wait until every rank is here."""
        if self.world_size > 1:
            torch.distributed.barrier()

    def leave(self, together: bool):
        """Leave the process group; ``together``: the ranks all finished, and wait for each other first."""
        if not self.joined:
            return
        # DistributedDataParallel holds the group, and torchbearer's Trial (which refers to itself) holds the
        # DDP model until a garbage collection: a group destroyed while held can abort the process at exit
        # ("terminate called without an active exception"), failing a run that succeeded.
        gc.collect()
        if together:  # not after an error: the other ranks may be waiting elsewhere, and torchrun stops them
            self.barrier()
        torch.distributed.destroy_process_group()
        self.joined = False


def train(args) -> dict:
    """``torchbearer-vae train``: train the reference VAE and write the run's files into ``--out``.

    Under ``torchrun`` every process runs it: see :class:`_Processes`, :func:`_train` and
    docs/distributed.rst.
    """
    processes = _Processes(args.device)
    finished = False
    try:
        summary = _train(args, processes)
        finished = True
        return summary
    finally:
        processes.leave(together=finished)


def _prepare(args, out):
    """``(checkpoint, options, nothing_to_do)``: --out checked, the run to resume read, its options."""
    checkpoint = _prepare_out(out, args.resume)
    remove_stale_temporaries(out)  # left by a run killed in the middle of a write
    options = _run_options(args, checkpoint)
    done = 0 if checkpoint is None else checkpoint['epoch']
    return checkpoint, options, done >= args.epochs and os.path.exists(os.path.join(out, SUMMARY))


@dataclasses.dataclass
class _Training:
    """What ``train`` builds before it trains: the Trial, and what the run's summary needs."""
    trial: Trial
    guard: NaNGuard
    model: torch.nn.Module
    val_loader: TensorLoader
    out: str
    options: dict
    done: int  # epochs trained before this session (a resumed run)
    image_shape: tuple
    train_images: int
    val_images: int


def _train(args, processes: _Processes) -> dict:
    """Train on every rank: data sharded, the model in DistributedDataParallel, files written by rank 0.

    Every rank validates on all the validation images (with the same weights, in eval mode), so the
    ``val_*`` metrics and ``val_active_units`` are those one process would compute; the training
    metrics (``loss``, ``recon``, ``kl``) are averaged over the ranks by :class:`ReduceMetrics`,
    so the history, metrics.csv and the checkpoint hold the global values.
    """
    training = _build_training(args, processes)
    if training is None:
        return {}
    rank, world_size, device = processes.rank, processes.world_size, processes.device
    trial, guard, model, val_loader = training.trial, training.guard, training.model, training.val_loader
    out, options, done, image_shape = training.out, training.options, training.done, training.image_shape

    started = time.time()
    trial.run(epochs=args.epochs)
    seconds = time.time() - started
    history = trial.state[torchbearer.HISTORY]
    if guard.message is not None:
        kept = (f'{os.path.join(out, CHECKPOINT)} holds the first {len(history)} epoch(s), all finite' if history
                else 'no epoch completed, so no checkpoint was written')
        raise CommandError(f'{guard.message}. {kept}')

    if rank:  # rank 0 writes the run's last files
        return {}
    plotted = plot_history(history, os.path.join(out, 'loss.png'), metrics=('loss', 'recon', 'kl'))
    if not plotted:
        print('loss.png skipped: matplotlib is not installed (pip install "torchbearer-vae[plot]")')
    generator = torch.Generator(device=device).manual_seed(options['seed'])
    val_elbo = negative_elbo(model, val_loader, generator=generator)
    epochs_run = len(history) - done
    summary = {
        'dataset': options['dataset'] or 'mnist', 'image_shape': list(image_shape),
        'train_images': training.train_images, 'val_images': training.val_images, 'epochs': len(history),
        'epochs_this_session': epochs_run, 'options': options,
        'val_elbo_per_image': val_elbo,
        'val_elbo_per_image_means': 'negative ELBO (BCE + KL) in nats per validation image, z sampled as in training',
        'val_loss_z_mean_per_image': history[-1].get('val_loss'),
        'val_loss_z_mean_per_image_means': "the Trial's val_loss: the same loss with z = posterior mean (eval mode)",
        'wall_seconds': round(seconds, 3),
        'train_images_per_second': round(epochs_run * training.train_images / seconds, 1) if epochs_run else None,
        'device': str(device), 'processes': world_size, 'versions': _environment(),
    }
    write_json(os.path.join(out, SUMMARY), summary)
    print(f'{out}: {len(history)} epochs, validation negative ELBO {val_elbo:.2f} nats per image, '
          f'{seconds:.1f} s' + (f' ({world_size} processes)' if world_size > 1 else ''))
    return summary


def _build_training(args, processes: _Processes):
    """The :class:`_Training` of ``args`` on this rank, or ``None`` if the run in ``--out`` is complete.

    benchmarks/bench_training.py builds the command's Trial with it, to time its epochs in turn with the floor's.
    """
    rank, world_size, device = processes.rank, processes.world_size, processes.device
    out = args.out or os.path.join('runs', _run_name(args.dataset))
    checkpoint, options, nothing_to_do = processes.from_rank_0(lambda: _prepare(args, out))
    done = 0 if checkpoint is None else checkpoint['epoch']
    if nothing_to_do:
        if rank == 0:
            print(f'{out}: already trained for {done} epochs (asked for {args.epochs}); nothing to do')
        return None

    # The first process of each machine reads the data first: it downloads mnist/fashion-mnist if needed, alone.
    if processes.local_rank:
        processes.barrier()
    dataset = load_dataset(options['dataset'], options['data_dir'], options['limit'])
    if not processes.local_rank:
        processes.barrier()
    train_set, val_set = train_val_split(AutoEncoderDataset(dataset), options['val_fraction'], seed=options['seed'])
    torch.manual_seed(options['seed'])
    image_shape = tuple(dataset[0][0].shape)
    model = VAE(image_shape, hidden_dim=options['hidden_dim'], latent_dim=options['latent_dim'])
    if rank:  # its own draws of z; the weights are rank 0's, which DistributedDataParallel copies to every rank
        torch.manual_seed(options['seed'] + rank)
    optimizer = _adam(model.parameters(), options['lr'])
    # Each rank trains on its shard of every epoch (the same seed on all ranks: disjoint shards) ...
    train_loader = TensorLoader(train_set, batch_size=options['batch_size'], shuffle=True, seed=options['seed'],
                                device=device, rank=rank, world_size=world_size)
    # ... and validates on all the validation images.
    val_loader = TensorLoader(val_set, batch_size=options['batch_size'], device=device, rank=0, world_size=1)
    kl_term = kld_loss(beta=options['beta'], reduction='batchmean')
    history = []
    if checkpoint is not None:  # the state of every piece that changes as training goes on
        load_model_state(model, checkpoint['model_state'])
        optimizer.load_state_dict(checkpoint['optimizer_state'])
        kl_term.load_state_dict(checkpoint['kl_term'])
        train_loader.load_state_dict(checkpoint['train_loader'])
        rng_states = checkpoint.get('rng_states') or [checkpoint['rng_state']]  # one per rank, or one process's
        if rank < len(rng_states):  # a rank the run did not have keeps its seed + rank
            torch.set_rng_state(rng_states[rank])
        history = checkpoint['history']
    model.to(device)
    _optimizer_to(optimizer, device)
    # No device_ids, even on a GPU: with them DDP copies forward's keyword arguments to the device, and
    # torchbearer's state is one (the model would store MU and LOGVAR in a copy). The model is there already.
    trained = DistributedDataParallel(model) if world_size > 1 else model

    def resumable(state):
        rng_state = torch.get_rng_state()
        saved = {'options': options, 'kl_term': kl_term.state_dict(), 'train_loader': train_loader.state_dict(),
                 'rng_state': rng_state}
        if world_size > 1:  # Checkpointer calls this on every rank, before rank 0 writes
            saved['rng_states'] = processes.gather(rng_state)
        return saved

    # Its message becomes the command's error (in _train). One process checks no gradients: that costs ~1.5% of an epoch
    # and only protects the weights in memory, which this command discards on a NaN (the checkpoint holds whole good
    # epochs either way; a bad update shows as a non-finite output at the next step). Under DDP the gradient check
    # is what makes every rank stop at the same step (the all-reduce spreads a NaN), so there it stays on.
    guard = NaNGuard(gradients=world_size > 1, warn=False)
    callbacks = [
        ReduceMetrics(),  # first: the epoch's metrics are the means over the ranks before anything reads them
        kl_term,
        guard,
        ReconstructionSaver(folder=out),
        SampleSaver(folder=out, num_images=64, seed=options['seed']),
        Checkpointer(os.path.join(out, CHECKPOINT), extra=resumable),
        MetricsCSV(os.path.join(out, METRICS)),
    ]
    verbose = 0 if args.quiet or rank else (2 if sys.stderr.isatty() else 1)  # a bar per batch only on a terminal
    trial = Trial(trained, optimizer, _bce_per_image, metrics=['loss', 'recon', 'kl', 'active_units'],
                  callbacks=callbacks, verbose=verbose).to(device)
    trial.with_generators(train_generator=train_loader, val_generator=val_loader)
    trial.state[torchbearer.HISTORY] = history  # torchbearer continues from len(history)
    return _Training(trial, guard, model, val_loader, out, options, done, image_shape, len(train_set), len(val_set))


def _adam(parameters, lr: float) -> torch.optim.Adam:
    """Adam, fused into one kernel per step where this torch has it for the parameters' device.

    The default Adam updates each parameter with several small operations launched from Python;
    the fused one (CPU since torch 2.4, CUDA since 2.0) does it in one: the same algorithm, and an
    epoch of the reference VAE about 15% faster on a 2-core CPU (benchmarks/bench_training.py).
    """
    parameters = list(parameters)
    try:
        return torch.optim.Adam(parameters, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # an older torch, or a device without the fused kernel
        return torch.optim.Adam(parameters, lr=lr)


def _optimizer_to(optimizer, device):
    """Move a loaded optimizer's moment tensors to the model's device.

    Adam's ``step`` count stays on the CPU, where torch wants it, except for the fused and
    capturable variants, which keep it beside the parameters.
    """
    for group in optimizer.param_groups:
        step_beside_parameters = group.get('fused') or group.get('capturable')
        for parameter in group['params']:
            state = optimizer.state.get(parameter, {})
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and (key != 'step' or step_beside_parameters):
                    state[key] = value.to(device)


def _model(args):
    checkpoint = load_checkpoint(args.checkpoint)
    device = _device(args.device)
    return checkpoint, model_from_checkpoint(checkpoint).to(device), device


def _data_for(args, checkpoint):
    """The images of --dataset (default: the run's), or the run's own training or validation split."""
    options = checkpoint.get('options') or {}
    if args.split == 'all':
        name = args.dataset if args.dataset is not None else options.get('dataset')
        data_dir = args.data_dir if args.data_dir is not None else options.get('data_dir')
        return load_dataset(name, data_dir, args.limit)
    if not options:
        raise CommandError(f'--split {args.split} needs a checkpoint written by torchbearer-vae train, which records '
                           f'how its data was split; use --split all')
    if args.dataset not in (None, options['dataset']) or args.data_dir not in (None, options['data_dir']):
        raise CommandError(f"--split {args.split} is the run's own split of its dataset "
                           f"({options['dataset'] or 'mnist'}); leave out --dataset/--data-dir, or use --split all")
    dataset = load_dataset(options['dataset'], options['data_dir'], options['limit'])
    train_set, val_set = train_val_split(dataset, options['val_fraction'], seed=options['seed'])
    part = val_set if args.split == 'val' else train_set
    return part if args.limit is None else Subset(part, range(min(args.limit, len(part))))


def _file_template(path: str):
    """(folder, filename) for a picture callback writing exactly ``path`` (braces are not fields)."""
    folder, name = os.path.split(os.path.abspath(path))
    return folder, name.replace('{', '{{').replace('}', '}}')


def sample(args) -> None:
    """``torchbearer-vae sample``: a grid of decoded draws from the prior."""
    folder, filename = _file_template(args.out)
    saver = SampleSaver(folder=folder, filename=filename, num_images=args.n, nrow=max(1, round(args.n ** 0.5)),
                        seed=args.seed)
    checkpoint, model, device = _model(args)
    print(f'wrote {args.n} samples to {saver.save(model)}')


def reconstruct(args) -> None:
    """``torchbearer-vae reconstruct``: the first ``--n`` images above their reconstructions."""
    folder, filename = _file_template(args.out)
    saver = ReconstructionSaver(folder=folder, filename=filename, num_images=args.n)
    checkpoint, model, device = _model(args)
    dataset = _data_for(args, checkpoint)
    count = min(args.n, len(dataset))
    inputs = torch.stack([dataset[i][0] for i in range(count)]).to(device)
    print(f'wrote {count} images and their reconstructions to {saver.save(model, inputs)}')


def evaluate(args) -> dict:
    """``torchbearer-vae evaluate``: negative ELBO and (K > 1) the IWAE negative log-likelihood per image."""
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), 'evaluation.json')
    if os.path.isdir(out):
        raise CommandError(f'--out {out!r} is a folder; give the JSON file name')
    checkpoint, model, device = _model(args)
    dataset = _data_for(args, checkpoint)
    loader = TensorLoader(dataset, batch_size=args.batch_size, device=device)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    result = {'checkpoint': os.path.abspath(args.checkpoint), 'images': len(dataset),
              'negative_elbo_per_image': negative_elbo(model, loader, generator=generator)}
    if args.importance_samples > 1:
        result['importance_samples'] = args.importance_samples
        result['iwae_nll_per_image'] = importance_weighted_nll(model, loader, k=args.importance_samples,
                                                               generator=generator)
    write_json(out, result)
    print(json.dumps(result, indent=2))
    return result


def _environment() -> dict:
    """Versions of what a run depends on, for summary.json."""
    import torchvision
    return {'torchbearer_vae': __version__, 'torchbearer': torchbearer.__version__, 'torch': torch.__version__,
            'torchvision': torchvision.__version__, 'python': platform.python_version(),
            'platform': platform.platform()}
