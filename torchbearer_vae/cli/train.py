"""``torchbearer-vae train``: the run's data, model and callbacks built into a Trial, trained, its files written.

Its options, their defaults and how a checkpoint keeps them are defined in :mod:`torchbearer_vae.cli.options`.

Every problem with the arguments, the inputs or the files is a :class:`CommandError` (one line, exit status 2):
the data and checkpoint layers' ``ValueError``/``OSError``/:class:`CheckpointError` are turned into one here,
where it is known which argument named the file.
"""
import argparse
import dataclasses
import os
import shutil
import sys
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import torch
import torchbearer
from torch.nn.parallel import DistributedDataParallel
from torchbearer import Trial
from torchbearer.callbacks import Callback

from ..callbacks.guards import NaNGuard
from ..callbacks.picture_saver import PictureSaver
from ..callbacks.pictures import ReconstructionSaver, SampleSaver
from ..checkpoints import Checkpointer, load_checkpoint
from ..checks import plural
from ..compat import environment, fused_adam_supported
from ..data.datasets import AutoEncoderDataset, ImageDataset
from ..data.loaders import TensorLoader, load_batch_with_labels
from ..distributed import ReduceMetrics
from ..errors import CommandError
from ..evaluation import negative_elbo, reconstruction_term
from ..files import remove_stale_temporaries, wait_for_writers
from ..records import MetricsCSV, plot_history, write_json
from .advice import epoch_passes, run_advice
from .config import run_folder, session_options, write_config
from .data import (
    absolute,
    cache_folder,
    check_recorded_data,
    files_digest,
    image,
    images_digest,
    is_folder,
    load_dataset,
    shown,
    split,
)
from .interrupts import InterruptCheck, check_interrupted
from .kl import latent_terms
from .limits import check_training_fits
from .model import build_model, criterion, decoder_sigma, is_own, is_quantized, settle
from .options import REQUIRED_OPTIONS, check_saved_options, run_options, saved_options
from .prior import PRIOR, fit_run_prior
from .processes import Processes
from .progress import training_progress
from .resume import check_resumable, check_same_data, optimizer_to, restore
from .run_folder import (
    CHECKPOINT,
    FIRST_EPOCH,
    METRICS,
    SUMMARY,
    RunFolder,
    checkpoint_state,
    latent_pictures,
    picture_file,
    write_failure,
)
from .tensorboard import check_tensorboard, run_board

__all__ = []  # internal: the public entry point is torchbearer_vae.cli.main

# Validation images the latent pictures (KLPerDimension, LatentScatter) collect and encode when they draw: enough
# for a scatter of every class; the cost that matters is matplotlib's drawing, hence run_folder.LATENT_EVERY.
LATENT_IMAGES = 2000


# -- train --
def _out(args: argparse.Namespace) -> str:
    return run_folder(args)


def train(args: argparse.Namespace) -> dict:
    """``torchbearer-vae train``: train the reference VAE and write the run's files into ``--out``.

    ``--out`` is locked for the life of the run (see :class:`~torchbearer_vae.run_folder.RunFolder`).
    Under ``torchrun`` every process runs it: see :class:`~torchbearer_vae.processes.Processes`,
    :func:`_train` and docs/distributed.rst.

    Raises:
        KeyboardInterrupt: on Ctrl-C or SIGTERM, with what to do next as its message.
    """
    processes = Processes(args.device)
    folder = RunFolder(_out(args))
    finished = False
    try:
        summary = _train(args, processes, folder)
        finished = True
        return summary
    except KeyboardInterrupt:
        _wait_for_files()
        raise KeyboardInterrupt(_after_interruption(folder.path)) from None
    finally:
        _wait_for_files()  # the files handed to the background writers are whole before the lock goes
        folder.close()
        processes.leave(together=finished)


def _wait_for_files() -> None:
    """Wait for the threads that write the run's files (BackgroundWriter's; not torch.compile's worker pool)."""
    wait_for_writers(timeout=120)


def _after_interruption(out: str) -> str:
    """What to do after Ctrl-C: --resume only when there is a checkpoint to resume."""
    if os.path.exists(os.path.join(out, CHECKPOINT)):
        return f'{checkpoint_state(out)}; continue with --resume'
    return 'no epoch was checkpointed: run the same command again to start over'


def _prepare(args: argparse.Namespace, folder: RunFolder) -> Tuple[Optional[Dict[str, Any]], Dict[str, Any], bool]:
    """``(checkpoint, options, nothing_to_do)``: --out created and locked, the run to resume read and checked."""
    if not args.resume:  # before the folder is made: never inside the images
        folder.check_apart(absolute({'dataset': args.dataset})['dataset'])
    folder.open()
    path = os.path.join(folder.path, CHECKPOINT)
    checkpoint = None
    if args.resume:
        if not os.path.exists(path):
            raise CommandError(f'no checkpoint at {path!r} to resume; start the run without --resume')
        checkpoint = load_checkpoint(path)
        check_resumable(checkpoint, path, REQUIRED_OPTIONS)
        check_saved_options(saved_options(checkpoint), path)
        folder.check_apart(absolute(saved_options(checkpoint))['dataset'])
    else:
        folder.check_new_run()
    remove_stale_temporaries(folder.path)  # left by a run killed in the middle of a write; ours alone (locked)
    options = run_options(args, checkpoint)
    done = 0 if checkpoint is None else checkpoint['epoch']
    return checkpoint, options, done >= args.epochs and os.path.exists(os.path.join(folder.path, SUMMARY))


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
    folder: RunFolder
    steps_per_epoch: int  # optimizer steps of an epoch on this rank
    passes: int  # times an epoch goes over the training images


def _train(args: argparse.Namespace, processes: Processes, folder: RunFolder) -> dict:
    """Train on every rank: data sharded, the model in DistributedDataParallel, files written by rank 0.

    Every rank validates on all the validation images (with the same weights, in eval mode), so the
    ``val_*`` metrics and ``val_active_units`` are those one process would compute; the training
    metrics (``loss``, ``recon``, ``kl``) are averaged over the ranks by :class:`ReduceMetrics`,
    so the history, metrics.csv and the checkpoint hold the global values.
    """
    training = _build_training(args, processes, folder)
    if training is None:
        return {}
    rank, world_size = processes.rank, processes.world_size
    trial, guard, model, out, options = training.trial, training.guard, training.model, training.out, training.options
    started = time.time()
    try:
        check_interrupted()  # a Ctrl-C while the run was built (torch imports parts of itself lazily)
        trial.run(epochs=args.epochs)
        history = trial.state[torchbearer.HISTORY]
        if guard.message is not None:
            raise CommandError(_nan_message(guard.message, out, history, options))
        if rank:  # rank 0 writes the run's last files
            return {}
        seconds = time.time() - started
        summary = _summary(training, history, seconds, processes)
        summary['advice'] = run_advice(history, steps=len(history) * training.steps_per_epoch,
                                       batches=training.steps_per_epoch, options=options)
        write_json(os.path.join(out, SUMMARY), summary)
    except (OSError, RuntimeError) as error:
        _wait_for_files()
        weights = sum(p.numel() * p.element_size() for p in model.parameters())
        message = write_failure(error, out, needed=3 * weights)  # weights and Adam's two moments
        if message is None:
            raise
        raise CommandError(message) from None
    figure = (f'validation reconstruction term {summary["val_recon_per_image"]:.2f}' if is_quantized(options) else
              f'validation negative ELBO {summary["val_elbo_per_image"]:.2f}')
    print(f'{out}: {plural(len(history), "epoch")}, {figure} nats per image, {seconds:.1f} s'
          + (f' ({world_size} processes)' if world_size > 1 else ''))
    for line in summary['advice']:
        print(f'advice: {line}', file=sys.stderr)
    return summary


def _nan_message(message: str, out: str, history: list, options: dict) -> str:
    """The guard's diagnosis (without advice: its own is for Python code), and what the command line can do."""
    kept = (f'{os.path.join(out, CHECKPOINT)} holds the first {_epochs(len(history))}, all finite' if history
            else 'no epoch completed, so no checkpoint was written')
    return (f'{message}. {kept}. Start a new run in another --out with a lower --lr (this one used '
            f'--lr {options["lr"]:g}; try --lr {options["lr"] / 10:g})')


def _epochs(count: int) -> str:
    """'epoch' or 'N epochs', as in 'the first ...'."""
    return 'epoch' if count == 1 else plural(count, 'epoch')


def _summary(training: _Training, history: list, seconds: float, processes: Processes) -> dict:
    out, options, device = training.out, training.options, processes.device
    quantized = is_quantized(options)
    plotted = plot_history(history, os.path.join(out, 'loss.png'),
                           metrics=('loss', 'recon', 'commitment' if quantized else 'kl'))
    if not plotted:
        print('loss.png skipped: matplotlib is not installed (pip install matplotlib)')
    if quantized:  # no ELBO: the commitment term trains the codebook and says nothing of the images
        figures = {'val_recon_per_image': reconstruction_term(training.model, training.val_loader),
                   'val_recon_per_image_means': f'the reconstruction term ({options["likelihood"]} -log p(x|z)) in '
                                                f'nats per validation image, z the image\'s codes'}
    else:
        generator = torch.Generator(device=device).manual_seed(options['seed'])
        figures = {'val_elbo_per_image': negative_elbo(training.model, training.val_loader, generator=generator),
                   'val_elbo_per_image_means': f'negative ELBO ({options["likelihood"]} -log p(x|z) + KL) in nats per '
                                               f'validation image, z sampled as in training'}
    epochs_run = len(history) - training.done
    return {
        'dataset': shown(options['dataset']), 'image_shape': list(training.image_shape), 'model': options['model'],
        'likelihood': options['likelihood'],
        'train_images': training.train_images, 'val_images': training.val_images, 'epochs': len(history),
        'epochs_this_session': epochs_run, 'options': options,
        **figures,
        'val_loss_z_mean_per_image': history[-1].get('val_loss'),
        'val_loss_z_mean_per_image_means': "the Trial's val_loss: the same loss with z = posterior mean (eval mode)",
        'wall_seconds': round(seconds, 3),
        'passes_per_epoch': training.passes,
        'train_images_per_second': (round(epochs_run * training.passes * training.train_images / seconds, 1)
                                    if epochs_run else None),
        'device': str(device), 'processes': processes.world_size, 'versions': environment(),
    }


def _build_training(args: argparse.Namespace, processes: Processes,
                    folder: Optional[RunFolder] = None) -> Optional[_Training]:
    """The :class:`_Training` of ``args`` on this rank, or ``None`` if the run in ``--out`` is complete.

    benchmarks/bench_training.py builds the command's Trial with it, to time its epochs in turn with the floor's;
    without ``folder`` the run folder stays locked until the process ends.
    """
    rank, world_size, device = processes.rank, processes.world_size, processes.device
    if args.compile:
        check_compiler(device)  # before the data is read
    if getattr(args, 'tensorboard', False):
        check_tensorboard()
    folder = folder if folder is not None else RunFolder(_out(args))
    out = folder.path
    checkpoint, options, nothing_to_do = processes.from_rank_0(lambda: _prepare(args, folder))
    done = 0 if checkpoint is None else checkpoint['epoch']
    if nothing_to_do:
        if rank == 0:
            print(f'{out}: already trained for {plural(done, "epoch")} (asked for {args.epochs}); nothing to do')
        return None
    data = _read_data(args, processes, options)
    options = data.options
    if checkpoint is not None:
        check_same_data(checkpoint, os.path.join(out, CHECKPOINT), images=len(data.dataset), digests=data.digests,
                        dataset=shown(options['dataset']))
    model, optimizer = _model_and_optimizer(data, processes)
    train_loader, val_loader = _loaders(data, processes)
    terms = latent_terms(options, model, steps_per_epoch=len(train_loader))
    history = []
    if checkpoint is not None:  # the state of every piece that changes as training goes on
        history = restore(checkpoint, os.path.join(out, CHECKPOINT), model=model, optimizer=optimizer,
                          kl_term=terms[0], train_loader=train_loader, rank=rank)
    model.to(device)
    optimizer_to(optimizer, device)
    loss = criterion(options['likelihood'], decoder_sigma(options))
    if args.compile:
        model.compile()  # in place: the same module, the same state_dict keys, checkpoints unchanged
        loss = torch.compile(loss)
    # No device_ids, even on a GPU: with them DDP copies forward's keyword arguments to the device, and
    # torchbearer's state is one (the model would store MU and LOGVAR in a copy). The model is there already.
    trained = DistributedDataParallel(model) if world_size > 1 else model
    callbacks, guard = _callbacks(args, out, data, processes, terms=terms, train_loader=train_loader, model=model)
    if checkpoint is not None and rank == 0:  # the user's files in the run's folder are kept
        folder.check_own_pictures(_pictures_to_come(callbacks, range(done, args.epochs)))
    trial = Trial(trained, optimizer, loss, metrics=list(_metrics(options)), callbacks=callbacks,
                  verbose=0).to(device)
    trial.with_generators(train_generator=train_loader, val_generator=val_loader)
    passes = epoch_passes(len(train_loader))
    if passes > 1:  # torchbearer starts the loader again (a new order) when an epoch has more steps than it
        trial.for_train_steps(passes * len(train_loader))
    if data.num_classes is not None:
        trial.with_loader(load_batch_with_labels)
    trial.state[torchbearer.HISTORY] = history  # torchbearer continues from len(history)
    if rank == 0:  # once everything is checked: the resolved configuration, which train --config repeats
        write_config(out, options, session_options(args))
    return _Training(trial, guard, model, val_loader, out, options, done, data.image_shape, len(data.train_set),
                     len(data.val_set), folder, passes * len(train_loader), passes)


def _pictures_to_come(callbacks: List[Any], epochs: Iterable[int]) -> List[str]:
    """The files the run's picture callbacks will write in ``epochs`` (those drawn every few epochs: when drawn)."""
    paths: List[str] = []
    for callback in callbacks:
        picture, wanted = getattr(callback, 'callback', callback), getattr(callback, 'wanted', lambda epoch: True)
        if isinstance(picture, PictureSaver):
            files = (picture.file_for(epoch) for epoch in epochs if wanted(epoch))
            paths += [path for path in files if path is not None]
    return paths


@dataclasses.dataclass
class _RunData:
    """The run's images, read and split, and its options with what the images settle."""
    dataset: ImageDataset
    train_set: Any  # train_val_split's parts, torchbearer's SubsetDatasets: a length (torch's Dataset has none)
    val_set: Any
    image_shape: tuple
    num_classes: Optional[int]  # None: unlabelled
    class_names: Optional[list]  # a folder's class subfolders, for the latent chart's legend; None: indices
    options: dict
    digests: dict  # dataset_digest (a folder's files) and images_digest (the decoded images), None where unknown


def _read_data(args: argparse.Namespace, processes: Processes, options: dict) -> _RunData:
    """The run's data on this rank; a folder's channels, the model and its width settled from the images."""
    # The first process of each machine reads the data first: it downloads mnist/fashion-mnist/cifar10 if
    # needed, alone.
    if processes.local_rank:
        processes.barrier()
    download = True
    if args.resume:  # the data a checkpoint names: read only if it is there, never downloaded
        download = check_recorded_data(options['dataset'], options['data_dir'], source=f'--resume of {_out(args)}',
                                       typed_dataset=False, typed_data_dir=False,
                                       remedy='put the run\'s data back there, or start a new run without --resume')
    dataset = load_dataset(options['dataset'], options['data_dir'], options['limit'], image_size=options['image_size'],
                           channels=options['channels'], verbose=not (args.quiet or processes.rank), download=download,
                           check_shape=_model_fits_check(options, processes), cache_dir=cache_folder(args))
    if not processes.local_rank:
        processes.barrier()
    num_classes = classes_of(dataset, options)
    labelled = num_classes is not None  # the labels go along: a conditional model needs them, the scatter uses them
    train_set, val_set = split(AutoEncoderDataset(dataset, keep_labels=labelled), options)
    image_shape = tuple(image(dataset[0]).shape)
    if is_folder(options['dataset']):  # what the folder decoded to: evaluate and a resumed run decode the same
        options['channels'] = image_shape[0]
    class_names = getattr(dataset, 'classes', None) if is_folder(options['dataset']) else None
    digests = {'dataset_digest': files_digest(options['dataset'], dataset), 'images_digest': images_digest(dataset)}
    return _RunData(dataset, train_set, val_set, image_shape, num_classes, class_names, settle(options, image_shape),
                    digests)


def _model_fits_check(options: Dict[str, Any], processes: Processes) -> Callable[[Tuple[int, int, int], int], None]:
    """A folder's check before any image is decoded: the model for the images' shape and a batch must fit."""
    def check(shape: Tuple[int, int, int], count: int) -> None:
        settled = settle(options, shape)
        model = build_model({**settled, 'conditional': False}, shape, 'meta')  # the classes add a few weights only
        check_training_fits(model, settled['batch_size'], count, processes.device)
    return check


def _model_and_optimizer(data: _RunData, processes: Processes) -> Tuple[torch.nn.Module, torch.optim.Adam]:
    """``(model, optimizer)``: the run's model, seeded, and its Adam; CommandError if the training cannot fit."""
    options, rank = data.options, processes.rank
    check_training_fits(build_model(options, data.image_shape, 'meta', num_classes=data.num_classes),
                        options['batch_size'], len(data.train_set), processes.device)
    torch.manual_seed(options['seed'])
    model = build_model(options, data.image_shape, num_classes=data.num_classes)
    if rank:  # its own draws of z; the weights are rank 0's, which DistributedDataParallel copies to every rank
        torch.manual_seed(options['seed'] + rank)
    return model, _adam(model.parameters(), options['lr'])


def _loaders(data: _RunData, processes: Processes) -> Tuple[TensorLoader, TensorLoader]:
    """``(train_loader, val_loader)`` on this rank's device."""
    options, device = data.options, processes.device
    # Each rank trains on its shard of every epoch (the same seed on all ranks: disjoint shards) ...
    train_loader = TensorLoader(data.train_set, batch_size=options['batch_size'], shuffle=True, seed=options['seed'],
                                device=device, rank=processes.rank, world_size=processes.world_size)
    # ... and validates on all the validation images.
    val_loader = TensorLoader(data.val_set, batch_size=options['batch_size'], device=device, rank=0, world_size=1)
    return train_loader, val_loader


def _metrics(options: dict) -> Tuple[str, ...]:
    """The Trial's metrics: a Gaussian VAE's terms and active units, or a VQ-VAE's commitment term and code use."""
    if is_quantized(options):
        return 'loss', 'recon', 'commitment', 'perplexity', 'used_codes'
    return 'loss', 'recon', 'kl', 'active_units'


def _callbacks(args: argparse.Namespace, out: str, data: _RunData, processes: Processes, *, terms: List[Callback],
               train_loader: TensorLoader, model: torch.nn.Module) -> Tuple[List[Callback], NaNGuard]:
    """``(callbacks, guard)``: the Trial's callbacks in their order, and the NaNGuard among them."""
    options, world_size = data.options, processes.world_size

    def resumable(state: dict) -> Dict[str, Any]:
        rng_state = torch.get_rng_state()
        saved = {'options': options, 'kl_term': terms[0].state_dict(), 'train_loader': train_loader.state_dict(),
                 'rng_state': rng_state, 'dataset_images': len(data.dataset), **data.digests}
        if world_size > 1:  # Checkpointer calls this on every rank, before rank 0 writes
            saved['rng_states'] = processes.gather(rng_state)
        if processes.rank == 0 and len(state[torchbearer.HISTORY]) >= args.epochs:  # the run's last checkpoint
            prior = fit_run_prior(model, TensorLoader(data.train_set, batch_size=500, device=processes.device),
                                  options['seed'])
            if prior is not None:
                saved[PRIOR] = prior
        return saved

    # Its message becomes the command's error (in _train). One process checks no gradients: that costs ~1.5% of an epoch
    # and only protects the weights in memory, which this command discards on a NaN (the checkpoint holds whole good
    # epochs either way; a bad update shows as a non-finite loss at the next step). Under DDP the gradient check
    # is what makes every rank stop at the same step (the all-reduce spreads a NaN), so there it stays on.
    # The output is not checked before the criterion when a NaN output can only give a NaN loss, which the loss check
    # of the same step catches (2% of an MNIST epoch): the package's models, whose Bernoulli loss is scored from the
    # logits. Under --compile, or with the user's own class, the loss may be scored from probabilities as BCELoss
    # does, which raises on NaN: there the output is checked first.
    guard = NaNGuard(gradients=world_size > 1, warn=False, advice='',
                     output=bool(args.compile) or is_own(options['model']))
    quantized = is_quantized(options)  # no N(0, I) to sample and no (mu, logvar) to chart: the codes' prior is
    # fitted at the end (prior.py)
    pictures: List[PictureSaver] = [ReconstructionSaver(folder=out, filename=picture_file('reconstruction',
                                                                                         args.epochs))]
    if not quantized:
        pictures.append(SampleSaver(folder=out, filename=picture_file('samples', args.epochs), num_images=64,
                                    seed=options['seed']))
    for picture in pictures:
        picture.number_epochs_from(FIRST_EPOCH)
    board = [run_board(out)] if getattr(args, 'tensorboard', False) and processes.rank == 0 else []
    for picture, tag in zip(pictures, ('reconstruction', 'samples')):
        for writer in board:  # the pictures first, then the board flushes them with the epoch's metrics
            picture.with_handler(writer.picture(tag))
    callbacks = [
        ReduceMetrics(),  # first: the epoch's metrics are the means over the ranks before anything reads them
        InterruptCheck(),  # a Ctrl-C a library swallowed stops the run at the next batch
        *terms,
        guard,
        *pictures,
        *([] if quantized else latent_pictures(out, labelled=data.num_classes is not None, epochs=args.epochs,
                                               num_images=LATENT_IMAGES, class_names=data.class_names)),
        *board,
        Checkpointer(os.path.join(out, CHECKPOINT), extra=resumable),
        MetricsCSV(os.path.join(out, METRICS)),
    ]
    callbacks += training_progress(args.quiet, processes.rank)  # last: the epoch's figures are final
    return callbacks, guard


def classes_of(dataset: Any, options: dict) -> Optional[int]:
    """The number of classes of a labelled dataset, else None; CommandError for --conditional without labels."""
    targets = getattr(dataset, 'targets', None)
    if targets is None or len(targets) == 0:
        if options.get('conditional'):
            raise CommandError(f'--conditional needs labelled images, but --dataset {shown(options["dataset"])} has '
                               f'no labels: put each class\'s images in a subfolder of its own (folder:DIR), give '
                               f'the labels file (idx:DIR), or leave --conditional out')
        return None
    classes = getattr(dataset, 'classes', None)
    count = len(classes) if classes else int(torch.as_tensor(targets).max()) + 1
    if options.get('conditional') and count < 2:
        raise CommandError(f'--conditional needs at least 2 classes, but --dataset {shown(options["dataset"])} has '
                           f'{count}; leave --conditional out')
    return count


def check_compiler(device: torch.device) -> None:
    """CommandError unless ``torch.compile`` can build kernels for ``device``: on the CPU it needs a C++ compiler."""
    if torch.device(device).type != 'cpu':
        return
    compilers = [os.environ['CXX']] if os.environ.get('CXX') else ['g++', 'c++', 'clang++']
    if not any(shutil.which(name.split()[0]) for name in compilers):
        raise CommandError(f'--compile on the CPU needs a C++ compiler ({" or ".join(compilers)}, or set CXX), and '
                           f'none was found: install one (Debian/Ubuntu: apt install g++) or leave --compile out')


def _adam(parameters: Iterable[torch.nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam, fused into one kernel per step where this torch has it for the parameters' device.

    The default Adam updates each parameter with several small operations launched from Python;
    the fused one does it in one: the same algorithm, and an epoch of the reference VAE about 15%
    faster on a 2-core CPU (benchmarks/bench_training.py).
    """
    parameters = list(parameters)
    fused = bool(parameters) and fused_adam_supported(parameters[0].device)
    return torch.optim.Adam(parameters, lr=lr, fused=fused or None)


