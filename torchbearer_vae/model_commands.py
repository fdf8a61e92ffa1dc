"""``torchbearer-vae sample``, ``reconstruct`` and ``evaluate``: what a trained model does with a checkpoint.

Each checks where it will write (never over its inputs or a file of another kind) and the sizes it is asked
for before loading anything; every problem is one :class:`CommandError`.
"""
import json
import os
import sys

import torch

from .callbacks import ReconstructionSaver, SampleSaver
from .checkpoints import CheckpointError, load_checkpoint, model_from_checkpoint
from .commands import RUN_OPTIONS, load_dataset, split, unreadable
from .errors import CommandError
from .evaluation import importance_weighted_nll, negative_elbo
from .limits import check_evaluation_fits, check_pictures_fit
from .loaders import TensorLoader
from .processes import device as _device
from .records import write_json
from .run_folder import output_file

__all__ = []  # internal: the public entry point is torchbearer_vae.cli.main


def _model(args):
    checkpoint = load_checkpoint(args.checkpoint)
    device = _device(args.device)
    try:
        model = model_from_checkpoint(checkpoint)
    except CheckpointError as error:
        raise CommandError(f'--checkpoint {args.checkpoint}: {error}') from None
    except (KeyError, TypeError, ValueError) as error:  # a configuration the model refuses
        raise CommandError(f'--checkpoint {args.checkpoint}: its model cannot be rebuilt: '
                           f'{unreadable(error)}') from None
    return checkpoint, model.to(device), device


def _sizes(model):
    return tuple(getattr(model, 'input_shape', ())), getattr(model, 'hidden_dim', 0), getattr(model, 'latent_dim', 0)


def _data_for(args, checkpoint, model):
    """The images of --dataset (default: the run's), or the run's own training or validation split."""
    options = checkpoint.get('options') if isinstance(checkpoint.get('options'), dict) else {}
    name = args.dataset if args.dataset is not None else options.get('dataset')
    data_dir = args.data_dir if args.data_dir is not None else options.get('data_dir')
    if args.split == 'all':
        dataset = load_dataset(name, data_dir, args.limit)
    else:
        if not all(key in options for key in RUN_OPTIONS):
            raise CommandError(f'--split {args.split} needs a checkpoint written by torchbearer-vae train, which '
                               f'records how its data was split; use --split all')
        # --dataset/--data-dir say where the run's data is now (an older checkpoint kept a relative path)
        dataset = load_dataset(name, data_dir, options['limit'])
        expected = checkpoint.get('dataset_images')
        if isinstance(expected, int) and len(dataset) != expected:
            raise CommandError(f'--split {args.split} is a split of the run\'s {expected} images, but --dataset '
                               f'{name or "mnist"} has {len(dataset)}; give the run\'s dataset, or use --split all')
        train_set, val_set = split(dataset, options)
        dataset = val_set if args.split == 'val' else train_set
        if args.limit is not None:
            dataset = torch.utils.data.Subset(dataset, range(min(args.limit, len(dataset))))
    shape, wanted = tuple(dataset[0][0].shape), _sizes(model)[0]
    if wanted and shape != wanted:
        raise CommandError(f'--dataset {name or "mnist"} has images of shape {shape}, but the model in '
                           f'{args.checkpoint} takes {wanted}; give the dataset it was trained on')
    return dataset


def _template(path: str):
    """(folder, filename) for a picture callback writing exactly ``path`` (braces are not fields)."""
    folder, name = os.path.split(os.path.abspath(path))
    return folder, name.replace('{', '{{').replace('}', '}}')


def _start(args, default_name: str, kind: str):
    """``(out, checkpoint, model, device)``: the output file checked before any work, then the checkpoint's model."""
    out = output_file(args.out, default_name=default_name, beside=args.checkpoint, kind=kind,
                      inputs={'the checkpoint': args.checkpoint})
    return (out, *_model(args))


def sample(args) -> None:
    """``torchbearer-vae sample``: a grid of decoded draws from the prior."""
    out, checkpoint, model, device = _start(args, 'samples.png', 'image')
    shape, hidden, latent = _sizes(model)
    rows = max(1, round(args.num_images ** 0.5))
    check_pictures_fit(args.num_images, shape, hidden, latent, device)
    saver = SampleSaver(*_template(out), num_images=args.num_images, nrow=rows, seed=args.seed)
    print(f'wrote {args.num_images} samples to {saver.save(model)}')


def reconstruct(args) -> None:
    """``torchbearer-vae reconstruct``: the first ``--num-images`` images above their reconstructions."""
    out, checkpoint, model, device = _start(args, 'recon.png', 'image')
    dataset = _data_for(args, checkpoint, model)
    count = min(args.num_images, len(dataset))
    check_pictures_fit(2 * count, *_sizes(model), device)
    saver = ReconstructionSaver(*_template(out), num_images=count)
    inputs = torch.stack([dataset[i][0] for i in range(count)]).to(device)
    print(f'wrote {count} images and their reconstructions to {saver.save(model, inputs)}')


def evaluate(args) -> dict:
    """``torchbearer-vae evaluate``: negative ELBO and (K > 1) the IWAE negative log-likelihood per image."""
    out, checkpoint, model, device = _start(args, 'evaluation.json', 'json')
    dataset = _data_for(args, checkpoint, model)
    shape, hidden, latent = _sizes(model)
    check_evaluation_fits(args.batch_size, len(dataset), args.importance_samples, shape, hidden, latent, device)
    loader = TensorLoader(dataset, batch_size=args.batch_size, device=device)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    result = {'checkpoint': os.path.abspath(args.checkpoint), 'images': len(dataset),
              'negative_elbo_per_image': negative_elbo(model, loader, generator=generator)}
    if args.importance_samples > 1:
        result['importance_samples'] = args.importance_samples
        result['iwae_nll_per_image'] = importance_weighted_nll(model, loader, num_samples=args.importance_samples,
                                                               generator=generator)
    write_json(out, result)
    print(json.dumps(result, indent=2))
    print(f'wrote {out}', file=sys.stderr)  # stdout stays the JSON alone, for a pipe
    return result

