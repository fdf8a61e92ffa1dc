"""What each ``torchbearer-vae`` sub-command does; :mod:`torchbearer_vae.cli` parses the arguments."""
import json
import os
import platform
import sys
import time

import torch
import torch.nn.functional as F
import torchbearer
from torch.utils.data import Subset
from torchbearer import Trial

from ._io import remove_stale_temporaries
from .callbacks import ReconstructionSaver, SampleSaver
from .checkpoints import Checkpointer, load_checkpoint, load_model_state, model_from_checkpoint
from .cli import _DEFAULTS, _RUN_OPTIONS, CommandError
from .datasets import AutoEncoderDataset, IDXDataset, ImageDataset, load_digits, load_mnist, train_val_split
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


def train(args) -> dict:
    """``torchbearer-vae train``: train the reference VAE and write the run's files into ``--out``."""
    out = args.out or os.path.join('runs', _run_name(args.dataset))
    checkpoint = _prepare_out(out, args.resume)
    remove_stale_temporaries(out)  # left by a run killed in the middle of a write
    options = _run_options(args, checkpoint)
    device = _device(args.device)
    done = 0 if checkpoint is None else checkpoint['epoch']
    if done >= args.epochs and os.path.exists(os.path.join(out, SUMMARY)):
        print(f'{out}: already trained for {done} epochs (asked for {args.epochs}); nothing to do')
        return {}

    dataset = load_dataset(options['dataset'], options['data_dir'], options['limit'])
    train_set, val_set = train_val_split(AutoEncoderDataset(dataset), options['val_fraction'], seed=options['seed'])
    torch.manual_seed(options['seed'])
    image_shape = tuple(dataset[0][0].shape)
    model = VAE(image_shape, hidden_dim=options['hidden_dim'], latent_dim=options['latent_dim'])
    optimizer = torch.optim.Adam(model.parameters(), lr=options['lr'])
    train_loader = TensorLoader(train_set, batch_size=options['batch_size'], shuffle=True, seed=options['seed'],
                                device=device)
    val_loader = TensorLoader(val_set, batch_size=options['batch_size'], device=device)
    kl_term = kld_loss(beta=options['beta'], reduction='batchmean')
    history = []
    if checkpoint is not None:  # the state of every piece that changes as training goes on
        load_model_state(model, checkpoint['model_state'])
        optimizer.load_state_dict(checkpoint['optimizer_state'])
        kl_term.load_state_dict(checkpoint['kl_term'])
        train_loader.load_state_dict(checkpoint['train_loader'])
        torch.set_rng_state(checkpoint['rng_state'])
        history = checkpoint['history']
    model.to(device)
    _optimizer_to(optimizer, device)

    def resumable(state):
        return {'options': options, 'kl_term': kl_term.state_dict(), 'train_loader': train_loader.state_dict(),
                'rng_state': torch.get_rng_state()}

    guard = NaNGuard(warn=False)  # its message becomes the command's error below
    callbacks = [
        kl_term,
        guard,
        ReconstructionSaver(folder=out),
        SampleSaver(folder=out, num_images=64, seed=options['seed']),
        Checkpointer(os.path.join(out, CHECKPOINT), extra=resumable),
        MetricsCSV(os.path.join(out, METRICS)),
    ]
    verbose = 0 if args.quiet else (2 if sys.stderr.isatty() else 1)  # a bar per batch only on a terminal
    trial = Trial(model, optimizer, _bce_per_image, metrics=['loss', 'recon', 'kl', 'active_units'],
                  callbacks=callbacks, verbose=verbose).to(device)
    trial.with_generators(train_generator=train_loader, val_generator=val_loader)
    trial.state[torchbearer.HISTORY] = history  # torchbearer continues from len(history)

    started = time.time()
    trial.run(epochs=args.epochs)
    seconds = time.time() - started
    history = trial.state[torchbearer.HISTORY]
    if guard.message is not None:
        kept = (f'{os.path.join(out, CHECKPOINT)} holds the last good epoch ({len(history)})' if history else
                'no epoch completed, so no checkpoint was written')
        raise CommandError(f'{guard.message}. {kept}')

    plotted = plot_history(history, os.path.join(out, 'loss.png'), metrics=('loss', 'recon', 'kl'))
    if not plotted:
        print('loss.png skipped: matplotlib is not installed (pip install "torchbearer-vae[plot]")')
    generator = torch.Generator(device=device).manual_seed(options['seed'])
    val_elbo = negative_elbo(model, val_loader, generator=generator)
    epochs_run = len(history) - done
    summary = {
        'dataset': options['dataset'] or 'mnist', 'image_shape': list(image_shape),
        'train_images': len(train_set), 'val_images': len(val_set), 'epochs': len(history),
        'epochs_this_session': epochs_run, 'options': options,
        'val_elbo_per_image': val_elbo,
        'val_elbo_per_image_means': 'negative ELBO (BCE + KL) in nats per validation image, z sampled as in training',
        'val_loss_z_mean_per_image': history[-1].get('val_loss'),
        'val_loss_z_mean_per_image_means': "the Trial's val_loss: the same loss with z = posterior mean (eval mode)",
        'wall_seconds': round(seconds, 3),
        'train_images_per_second': round(epochs_run * len(train_set) / seconds, 1) if epochs_run else None,
        'device': str(device), 'versions': _environment(),
    }
    write_json(os.path.join(out, SUMMARY), summary)
    print(f'{out}: {len(history)} epochs, validation negative ELBO {val_elbo:.2f} nats per image, '
          f'{seconds:.1f} s')
    return summary


def _optimizer_to(optimizer, device):
    """Move a loaded optimizer's moment tensors to the model's device."""
    for state in optimizer.state.values():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and key != 'step':
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
