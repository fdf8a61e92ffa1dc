"""``torchbearer-vae sample``, ``reconstruct`` and ``evaluate``: what a trained model does with a checkpoint.

Each checks where it will write (never over its inputs or a file of another kind) and the sizes it is asked
for before loading anything; every problem is one :class:`CommandError`. A conditional model
(``train --conditional``) is given the labels of the data, and ``sample --label N`` draws one class.
"""
import argparse
import contextlib
import math
import os
import sys
import time
from typing import Any, Dict, Iterator, Optional, Tuple

import torch

from ..callbacks.pictures import ReconstructionSaver, SampleSaver
from ..checkpoints import load_checkpoint
from ..checks import plural
from ..data.datasets import SizedDataset
from ..data.loaders import TensorLoader
from ..errors import CheckpointError, CommandError, MissingStateError
from ..evaluation import importance_weighted_nll, negative_elbo, reconstruction_psnr, reconstruction_term
from ..model_utils import evaluating, is_conditional
from ..models import model_from_checkpoint
from ..records import write_json
from .data import (
    absolute,
    cache_folder,
    check_recorded_data,
    image,
    is_folder,
    load_dataset,
    shown,
    split,
    unreadable,
)
from .limits import check_evaluation_fits, check_picture_opens, check_pictures_fit
from .model import import_model_class, is_own
from .options import REQUIRED_OPTIONS, check_saved_options, saved_options
from .prior import has_codebook, run_prior
from .processes import pick_device
from .progress import counted
from .run_folder import check_outside_data, output_file

__all__ = []  # internal: the public entry point is torchbearer_vae.cli.main


def _model(args: argparse.Namespace) -> Tuple[Dict[str, Any], Any, torch.device]:
    checkpoint = load_checkpoint(args.checkpoint)
    options = checkpoint.get('options')  # save_checkpoint's own checkpoints hold none
    check_saved_options({} if options is None else options, args.checkpoint, resuming=False)
    _check_finite(args, checkpoint['model_state'])
    device = pick_device(args.device)
    model_class = _own_class(args)
    try:
        model = model_from_checkpoint(checkpoint, model_class=model_class)
    except CheckpointError as error:
        if 'model_class=' in str(error):  # a user's own BaseVAE subclass: never imported unless the user names it
            raise CommandError(f'--checkpoint {args.checkpoint} holds your own model class: add '
                               f'--model {_class_of(checkpoint)} (a class named in a checkpoint is imported only '
                               f'when you name it)') from None
        raise CommandError(f'--checkpoint {args.checkpoint}: {error}') from None
    except (KeyError, TypeError, ValueError) as error:  # a configuration the model refuses
        raise CommandError(f'--checkpoint {args.checkpoint}: its model cannot be rebuilt: '
                           f'{unreadable(error)}') from None
    return checkpoint, model.to(device), device


def _own_class(args: argparse.Namespace) -> Optional[type]:
    """The class ``--model module:Class`` names, imported; None without ``--model``."""
    if getattr(args, 'model', None) is None:
        return None
    if not is_own(args.model):
        raise CommandError(f'--model {args.model}: the package\'s models are rebuilt from the checkpoint by '
                           f'themselves; --model names your own class (module:Class): leave it out')
    return import_model_class(args.model)


def _class_of(checkpoint: Dict[str, Any]) -> str:
    """The ``--model`` a checkpoint of the user's class needs: the run's own (train --model), else its class path."""
    options = checkpoint.get('options')
    given = options.get('model') if isinstance(options, dict) else None
    if isinstance(given, str) and is_own(given):
        return given
    return str((checkpoint.get('model') or {}).get('class', 'module:Class'))


def _check_finite(args: argparse.Namespace, weights: dict) -> None:
    """Refuse weights holding NaN or infinity: every picture and number drawn from them would be garbage."""
    broken = [name for name, value in weights.items() if value.is_floating_point() and not value.isfinite().all()]
    if broken:
        shown = ', '.join(broken[:3]) + (f' and {len(broken) - 3} more' if len(broken) > 3 else '')
        raise CommandError(f'--checkpoint {args.checkpoint}: its weights hold NaN or infinity ({shown}); use the '
                           f'checkpoint of a run that stayed finite (train keeps the last finite epoch)')


def _which_split(args: argparse.Namespace, checkpoint: Dict[str, Any], options: Dict[str, Any]) -> str:
    """``--split``, or by default the run's validation images: those the model was not trained on.

    ``all`` by default when the checkpoint does not record a run's split, or ``--dataset`` names other data.
    """
    if args.split is not None:
        split: str = args.split
        return split
    if not all(key in (checkpoint.get('options') or {}) for key in REQUIRED_OPTIONS):
        return 'all'
    if args.dataset is not None and shown(absolute({'dataset': args.dataset})['dataset']) != shown(options['dataset']):
        return 'all'
    return 'val'


def _preprocessing(name: Optional[str], options: Dict[str, Any], model: Any) -> Dict[str, Any]:
    """How a folder is decoded for this model: the run's --image-size and --channels (else the model's channels)."""
    if not is_folder(name):
        return {}
    shape = tuple(getattr(model, 'input_shape', ()))
    channels = options.get('channels') or (shape[0] if len(shape) == 3 and shape[0] in (1, 3) else None)
    return {'image_size': options.get('image_size'), 'channels': channels}


def _data_for(args: argparse.Namespace, checkpoint: Dict[str, Any], model: Any,
              out: str) -> Tuple[SizedDataset, str, str]:
    """``(images, split, a line saying which)``: --dataset (default: the run's), all of it or a split of the run's.

    ``out``, the command's output file, may not be inside the images (checked before they are read).
    """
    options = saved_options(checkpoint)
    name = args.dataset if args.dataset is not None else options.get('dataset')
    data_dir = args.data_dir if args.data_dir is not None else options.get('data_dir')
    which = _which_split(args, checkpoint, options)
    preprocessing = _preprocessing(name, options, model)
    preprocessing['download'] = check_recorded_data(
        name, data_dir, source=f'--checkpoint {args.checkpoint}', typed_dataset=args.dataset is not None,
        typed_data_dir=args.data_dir is not None, remedy="give the run's data with --dataset (and --data-dir)")
    check_outside_data(out, name if isinstance(name, str) else None)
    dataset: Any  # an ImageDataset, or a split or Subset of it (typed Dataset by torch, which has no __len__)
    if which == 'all':
        dataset = load_dataset(name, data_dir, args.limit, verbose=False, cache_dir=cache_folder(args), **preprocessing)
    else:
        if not all(key in (checkpoint.get('options') or {}) for key in REQUIRED_OPTIONS):
            raise CommandError(f'--split {which} needs a checkpoint written by torchbearer-vae train, which '
                               f'records how its data was split; use --split all')
        # --dataset/--data-dir say where the run's data is now (an older checkpoint kept a relative path)
        dataset = load_dataset(name, data_dir, options['limit'], verbose=False, cache_dir=cache_folder(args),
                               **preprocessing)
        expected = checkpoint.get('dataset_images')
        if isinstance(expected, int) and len(dataset) != expected:
            raise CommandError(f'--split {which} is a split of the run\'s {expected} images, but --dataset '
                               f'{shown(name)} has {len(dataset)}; give the run\'s dataset, or use --split all')
        train_set, val_set = split(dataset, options)
        dataset = val_set if which == 'val' else train_set
        if args.limit is not None:
            dataset = torch.utils.data.Subset(dataset, range(min(args.limit, len(dataset))))
    shape, wanted = tuple(image(dataset[0]).shape), tuple(getattr(model, 'input_shape', ()))
    if wanted and shape != wanted:
        raise CommandError(f'--dataset {shown(name)} has images of shape {shape}, but the model in '
                           f'{args.checkpoint} takes {wanted}; give the dataset it was trained on')
    what = {'all': 'all the images', 'train': "the run's training images", 'val': "the run's validation images"}
    return dataset, which, f'--split {which}: {what[which]} of --dataset {shown(name)} ({len(dataset):,})'


def _labels(args: argparse.Namespace, dataset: SizedDataset, model: Any, count: int) -> Optional[torch.Tensor]:
    """The labels of the first ``count`` images for a conditional model (None for another); CommandError if none."""
    if not is_conditional(model):
        return None
    first = dataset[0]
    if not isinstance(first, (tuple, list)) or len(first) < 2:
        raise CommandError(f'the model in {args.checkpoint} is conditional (a ConditionalVAE of {model.num_classes} '
                           f'classes) and needs each image\'s label, but the images given have none; give its '
                           f'labelled dataset (--dataset)')
    return torch.tensor([int(dataset[i][1]) for i in range(count)])


@contextlib.contextmanager
def _fitting(args: argparse.Namespace) -> Iterator[None]:
    """A model that does not fit the data given (labels missing or out of its range): one line naming both."""
    try:
        yield
    except (MissingStateError, ValueError) as error:
        data = f'--dataset {shown(args.dataset)}' if getattr(args, 'dataset', None) else 'the data'
        raise CommandError(f'the model in {args.checkpoint} does not fit {data}: {unreadable(error)}') from None


def _template(path: str) -> Tuple[str, str]:
    """(folder, filename) for a picture callback writing exactly ``path`` (braces are not fields)."""
    folder, name = os.path.split(os.path.abspath(path))
    return folder, name.replace('{', '{{').replace('}', '}}')


def _start(args: argparse.Namespace, default_name: str,
           kind: str) -> Tuple[str, Dict[str, Any], Any, torch.device]:
    """``(out, checkpoint, model, device)``: the output file checked before any work, then the checkpoint's model."""
    out = output_file(args.out, default_name=default_name, beside=args.checkpoint, kind=kind,
                      inputs={'the checkpoint': args.checkpoint}, force=args.force)
    return (out, *_model(args))


def _check_label(args: argparse.Namespace, model: Any) -> None:
    if args.label is None:
        return
    if not is_conditional(model):
        raise CommandError(f'--label picks a class of a conditional model (train --conditional), but the model in '
                           f'{args.checkpoint} is a {type(model).__name__}, which takes no labels: leave --label out')
    if args.label >= model.num_classes:
        raise CommandError(f'--label {args.label} is not a class of the model in {args.checkpoint}: it has '
                           f'{model.num_classes} classes, 0 to {model.num_classes - 1}')


def sample(args: argparse.Namespace) -> None:
    """``torchbearer-vae sample``: a grid of decoded draws from the prior (one class with ``--label``).

    A conditional model without ``--label`` draws one row per class, the same noise in each column.
    """
    # each class its own default file: `--label 7` keeps the samples of `--label 3`
    default_name = 'samples.png' if args.label is None else f'samples_label{args.label}.png'
    out, checkpoint, model, device = _start(args, default_name, 'image')
    _check_label(args, model)
    prior = run_prior(checkpoint, model, args.checkpoint, args.prior)
    rows = max(1, round(args.num_images ** 0.5))
    if is_conditional(model) and args.label is None:  # one row per class, --num-images in all (about)
        columns = math.ceil(args.num_images / model.num_classes)
        check_pictures_fit(columns * model.num_classes, model, device)
        check_picture_opens(columns * model.num_classes, columns, model)
        saver = SampleSaver(*_template(out), num_images=columns, nrow=columns, seed=args.seed)
        with _fitting(args):
            path = saver.save(model)
        print(f'wrote {model.num_classes} rows of {plural(columns, "sample")}, one row per class (0 to '
              f'{model.num_classes - 1}), to {path}')
        return
    check_pictures_fit(args.num_images, model, device)
    check_picture_opens(args.num_images, rows, model)
    saver = SampleSaver(*_template(out), num_images=args.num_images, nrow=rows, seed=args.seed, label=args.label,
                        prior=prior)
    with _fitting(args):
        path = saver.save(model)
    print(f'wrote {plural(args.num_images, "sample")}{"" if args.label is None else f" of class {args.label}"}'
          f'{"" if prior is None else " from the fitted prior"} to {path}')


def reconstruct(args: argparse.Namespace) -> None:
    """``torchbearer-vae reconstruct``: the first ``--num-images`` images above their reconstructions."""
    out, checkpoint, model, device = _start(args, 'recon.png', 'image')
    dataset, _, said = _data_for(args, checkpoint, model, out)
    count = min(args.num_images, len(dataset))
    labels = _labels(args, dataset, model, count)  # a conditional model's: refused here if the images have none
    check_pictures_fit(2 * count, model, device)
    check_picture_opens(2 * count, count, model)  # the inputs in a row, their reconstructions below
    print(said, file=sys.stderr)
    saver = ReconstructionSaver(*_template(out), num_images=count)
    inputs = torch.stack([image(dataset[i]) for i in range(count)]).to(device)
    with _fitting(args):
        if labels is None:
            path = saver.save(model, inputs)
        else:  # a conditional model, given each image's label (the saver calls model(x) alone)
            with evaluating(model):
                recon = model(inputs, labels.to(device))[0]
            path = saver.write(inputs, recon.reshape(inputs.shape).cpu(), epoch=0)
    print(f'wrote {plural(count, "image")} and {"its reconstruction" if count == 1 else "their reconstructions"} '
          f'to {path}')


def _duration(seconds: float) -> str:
    """``seconds`` in the largest unit that keeps a number >= 1: '0.04 s', '12 min', '3.5 h', '1,157 days'."""
    size, unit = next(((size, unit) for size, unit in ((86400, 'days'), (3600, 'h'), (60, 'min')) if seconds >= size),
                      (1, 's'))
    value = seconds / size
    return f'{value:,.0f} {unit}' if value >= 10 else f'{value:.2g} {unit}'


def evaluate(args: argparse.Namespace) -> dict:
    """``torchbearer-vae evaluate``: negative ELBO, (K > 1) the IWAE negative log-likelihood, the reconstruction term
    and PSNR; a VQ-VAE's reconstruction term and PSNR (it has no ELBO)."""
    out, checkpoint, model, device = _start(args, 'evaluation.json', 'json')
    quantized = has_codebook(model)
    if quantized and args.importance_samples > 1:
        raise CommandError(f'--importance-samples estimates -log p(x) through a Gaussian posterior; the model in '
                           f'{args.checkpoint} is a {type(model).__name__}, which has none: leave it out (evaluate '
                           f'reports its reconstruction term and PSNR)')
    dataset, which, said = _data_for(args, checkpoint, model, out)
    _labels(args, dataset, model, 0)  # a conditional model: refused here if the images have no labels
    check_evaluation_fits(args.batch_size, len(dataset), args.importance_samples, model, device)
    print(said, file=sys.stderr)
    loader = TensorLoader(dataset, batch_size=args.batch_size, device=device)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    started = time.monotonic()
    result: Dict[str, Any] = {'checkpoint': os.path.abspath(args.checkpoint), 'split': which, 'images': len(dataset)}
    if not quantized:
        with _fitting(args):
            result['negative_elbo_per_image'] = negative_elbo(model, counted(loader, len(dataset), 'negative ELBO'),
                                                              generator=generator)
    seconds = time.monotonic() - started
    if args.importance_samples > 1:
        result['importance_samples'] = args.importance_samples
        # each importance sample decodes every image once more: about one ELBO pass (which also encodes) each
        print(f'IWAE bound, K={args.importance_samples}: up to about {_duration(args.importance_samples * seconds)} '
              f'({args.importance_samples:,} times the ELBO pass\'s {seconds:.2g} s)', file=sys.stderr, flush=True)
        with _fitting(args):
            result['iwae_nll_per_image'] = importance_weighted_nll(
                model, counted(loader, len(dataset), f'IWAE bound, K={args.importance_samples}'),
                num_samples=args.importance_samples, generator=generator)
    with _fitting(args):  # without draws: -log p(x|z) at each image's code, and how close the reconstructions are
        result['reconstruction_term_per_image'] = reconstruction_term(
            model, counted(loader, len(dataset), 'reconstruction term', quiet=not quantized))
        result['reconstruction_psnr_db'] = reconstruction_psnr(model, loader)
    code = 'the codes' if quantized else 'the posterior mean'
    print(f'reconstruction term {result["reconstruction_term_per_image"]:.2f} nats per image, PSNR '
          f'{result["reconstruction_psnr_db"]:.2f} dB (pixel values in [0, 1]; z {code})', file=sys.stderr)
    print(write_json(out, result), end='')  # the file's JSON: NaN or infinity written as null
    print(f'wrote {out}', file=sys.stderr)  # stdout stays the JSON alone, for a pipe
    return result

