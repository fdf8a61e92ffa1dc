"""How fast ``evaluate --importance-samples K`` estimates -log p(x), against its compute floor (issue 15).

A checkpoint of the command line's default VAE (784-400-20, Bernoulli) is trained for a couple of
epochs by ``torchbearer-vae train`` on the real MNIST images (../shared/data/mnist) into a temporary
folder (or given with --checkpoint); its run's 1,000 validation images (or, with --split all, all
10,000) are scored with K importance samples per image, batch B (the command's default, 500), and
timed interleaved round by round (the order rotated every round; the first round is a warm-up and
not counted):

  (0a) the floor: a minimal function doing only the IWAE arithmetic for this model, hard-wired to its
       layers, with no checks: per batch of B images, encode once, draw K*B z, decode all of them as
       one (K*B, 784) pass (split only if that pass would exceed 65,536 images), the Bernoulli
       log-likelihood of each image summed in float32 (the formula training and the library use:
       binary cross-entropy from the decoder's logits, softplus(l) - x l), log prior and log q, then a float64
       log-sum-exp over the K draws;
  (0b) the same floor decoding about 1,024 images per pass (--floor-pass), its K draws folded into a
       running float64 log-sum-exp: the (K*B, 784) pass of (0a) is larger than the caches, and these
       smaller passes are as fast or faster. The floor of a round is the faster of (0a) and (0b);
  (1)  the library: ``importance_weighted_nll(model, images, num_samples=K, batch_size=B)``;
  (2)  the command, whole process: ``python -m torchbearer_vae evaluate --checkpoint C
       --importance-samples K``, and the same command with ``--importance-samples 1``. Both load torch,
       the checkpoint and the images and compute the negative ELBO; only the first computes the IWAE
       bound, so t(K) - t(1) is the command's evaluation part, its start-up and every other step
       cancelling out.

It prints the median seconds of each with their range over the rounds, then per round the ratios
(1)/floor and (2)'s evaluation part/floor; the target, <= 1.5, applies to the evaluation part of the
command (the library's ratio is printed with the same target, and the whole process's for the
record). It also checks that all of them estimate the same thing: the library with the floor's
draws gives the floor's number, and the command's number is the library's with the command's seed;
it prints the floor's estimates over the rounds' seeds (their Monte-Carlo spread) beside the command's.

    python benchmarks/bench_evaluate.py                 # K=100, 6 rounds (about a minute on 2 cores)
    python benchmarks/bench_evaluate.py --k 1000 --rounds 3
    python benchmarks/bench_evaluate.py --split all     # the 10,000 images (about 10x longer)
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

import torchbearer_vae
from torchbearer_vae import (
    VAE,
    IDXDataset,
    TensorLoader,
    importance_weighted_nll,
    model_from_checkpoint,
    negative_elbo,
    train_val_split,
)

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared', 'data', 'mnist')
TARGET = 1.5
LARGEST_PASS = 65536  # decoded images: (0a)'s (K*B, 784) float32 intermediates stay under ~200 MB each
_LOG_2PI = math.log(2 * math.pi)


def floor(model: VAE, images: torch.Tensor, k: int, batch: int, pass_size: int, seed: int) -> float:
    """The IWAE estimate (nats per image) with nothing but its arithmetic, for the MLP ``VAE``."""
    generator = torch.Generator().manual_seed(seed)
    total = torch.zeros((), dtype=torch.float64)
    with torch.inference_mode():
        for x in images.split(batch):
            count = x.shape[0]
            flat = x.reshape(count, -1)
            hidden = torch.relu(model.fc1(flat))
            mu, logvar = model.fc21(hidden), model.fc22(hidden)
            std = torch.exp(0.5 * logvar)
            draws = max(1, pass_size // count)
            log_sum = torch.full((count,), -math.inf, dtype=torch.float64)
            for start in range(0, k, draws):
                draws = min(draws, k - start)
                eps = torch.randn((draws, count, mu.shape[1]), generator=generator)
                z = mu + std * eps
                logits = model.fc4(torch.relu(model.fc3(z.reshape(draws * count, -1))))
                logits = logits.reshape(draws, count, -1)
                log_px = -F.softplus(logits).addcmul_(flat.expand(draws, count, flat.shape[1]), logits,
                                                      value=-1).sum(-1)
                log_q = -0.5 * (eps.pow(2) + logvar + _LOG_2PI).sum(-1)
                log_prior = -0.5 * (z.pow(2) + _LOG_2PI).sum(-1)
                log_sum = torch.logaddexp(log_sum, torch.logsumexp((log_px + log_prior - log_q).double(), 0))
            total += (math.log(k) - log_sum).sum()
    return total.item() / images.shape[0]


def library(model, images, k, batch, seed) -> float:
    return importance_weighted_nll(model, images, num_samples=k, batch_size=batch,
                                   generator=torch.Generator().manual_seed(seed))


def command(args, checkpoint, k, out) -> tuple:
    """``(seconds, the JSON it printed)`` of one whole ``torchbearer-vae evaluate`` process."""
    line = [sys.executable, '-m', 'torchbearer_vae', 'evaluate', '--checkpoint', checkpoint, '--importance-samples',
            str(k), '--batch-size', str(args.batch_size), '--split', args.split, '--seed', '0', '--out', out]
    env = dict(os.environ, **({'OMP_NUM_THREADS': str(args.threads)} if args.threads else {}))
    start = time.perf_counter()
    done = subprocess.run(line, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ['(no message)'])[-1]
        raise SystemExit(f'`torchbearer-vae evaluate` failed (exit {done.returncode}): {last}')
    return seconds, json.loads(done.stdout)


def trained_checkpoint(args, folder) -> str:
    run = os.path.join(folder, 'run')
    line = [sys.executable, '-m', 'torchbearer_vae', 'train', '--dataset', f'idx:{args.data}', '--epochs',
            str(args.epochs), '--out', run, '--quiet']
    subprocess.run(line, check=True, capture_output=True)
    return os.path.join(run, 'checkpoint.pt')


def the_images(args, checkpoint) -> torch.Tensor:
    """The images the command scores: all of them, or the run's validation split (its fraction and seed)."""
    options = torch.load(checkpoint, weights_only=True)['options']
    mnist = IDXDataset.from_folder(args.data)
    data = mnist if args.split == 'all' else train_val_split(mnist, options['val_fraction'], seed=options['seed'])[1]
    return torch.cat([batch[0] for batch in TensorLoader(data, batch_size=1000)])


def interleaved(runs, rounds):
    """Every run once a round, the order rotated each round; the first round untimed.

    Returns ``(seconds, estimates, the command's JSON)``: (0b) and (1) are given the same seed in a round,
    so they draw the same noise and must give the same estimate; (0a) another.
    """
    seconds = {name: [] for name in runs}
    estimates = {name: [] for name in ('(0a)', '(0b)', '(1)')}
    names = list(runs)
    for round_ in range(rounds):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            start = time.perf_counter()
            value = runs[name]((2000 if name == '(0a)' else 1000) + round_)
            took = time.perf_counter() - start
            if name.startswith('(2)'):
                took, value = value
                if name == '(2) K':
                    said = value
            else:
                estimates[name].append(value)
            if round_ > 0:
                seconds[name].append(took)
    return seconds, estimates, said


def spread(values) -> str:
    return f'{statistics.median(values):.3f} s  ({min(values):.3f}-{max(values):.3f})'


def ratio_line(name, ratios, *, target=True) -> str:
    value = statistics.median(ratios)
    verdict = f'   target <= {TARGET:.1f}   {"met" if value <= TARGET else "MISSED"}' if target else '   (no target)'
    return f'ratio {name} = {value:.2f}   (rounds {min(ratios):.2f}-{max(ratios):.2f}){verdict}'


def report(args, count, whole, seconds, estimates, said, reproduced):
    """Print the times, the ratios against the floor and the estimates."""
    floors = [min(a, b) for a, b in zip(seconds['(0a)'], seconds['(0b)'])]
    parts = [k - one for k, one in zip(seconds['(2) K'], seconds['(2) 1'])]
    lines = {
        '(0a)': f'(0a) floor: one (K*B, 784) pass per batch{"" if whole == args.k * args.batch_size else " (split)"}',
        '(0b)': f'(0b) floor: passes of ~{args.floor_pass} decoded images',
        '(1)': '(1) importance_weighted_nll(model, images, ...)',
        '(2) K': f'(2) evaluate --importance-samples {args.k}, whole process',
        '(2) 1': '    evaluate --importance-samples 1 (start-up, data, ELBO)',
    }
    for name, label in lines.items():
        print(f'{label:<62} {spread(seconds[name])}')
    print(f'{"    evaluation part: t(K) - t(1), per round":<62} {spread(parts)}')
    print(f'{"floor of each round: the faster of (0a) and (0b)":<62} {spread(floors)}  '
          f'{args.k * count / statistics.median(floors):,.0f} decoded images/s')
    print(ratio_line('(2) evaluation part / floor', [p / f for p, f in zip(parts, floors)]))
    print(ratio_line('(1) library / floor', [t / f for t, f in zip(seconds['(1)'], floors)]))
    print(ratio_line('(2) whole process / floor', [t / f for t, f in zip(seconds['(2) K'], floors)], target=False))
    drawn = estimates['(0a)'] + estimates['(0b)']
    noise, centre = statistics.stdev(drawn), statistics.fmean(drawn)
    same_draws = max(abs(a - b) for a, b in zip(estimates['(1)'], estimates['(0b)']))
    command_nll = said['iwae_nll_per_image']
    print(f'estimates, nats per image: floor {min(drawn):.3f}-{max(drawn):.3f} over {len(drawn)} seeds (mean '
          f'{centre:.3f}, sd {noise:.3f}); (2) {command_nll:.3f}, {(command_nll - centre) / noise:+.1f} sd from that '
          f'mean (its own seed); negative ELBO {said["negative_elbo_per_image"]:.3f}')
    # The same draws must give the same number: then the estimates differ by their draws (Monte-Carlo noise) only.
    same = same_draws <= 1e-6 and abs(reproduced - command_nll) <= 1e-6
    print(f"same estimate from the same draws: (1) with (0b)'s draws {same_draws:.1e} from it, (1) with the "
          f"command's seed {reproduced - command_nll:+.1e} from (2): {'yes' if same else 'NO'}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data', default=os.path.normpath(DATA), help='folder with the MNIST IDX files')
    parser.add_argument('--checkpoint', default=None, help='an MLP VAE checkpoint of `torchbearer-vae train` '
                                                           '(default: train one into a temporary folder)')
    parser.add_argument('--epochs', type=int, default=2, help='epochs of that training (default: 2)')
    parser.add_argument('--k', type=int, default=100, help='importance samples per image (default: 100)')
    parser.add_argument('--batch-size', type=int, default=500, help="images per batch (default: 500, the command's)")
    parser.add_argument('--split', choices=('val', 'all'), default='val',
                        help="the run's 1,000 validation images (default) or all 10,000")
    parser.add_argument('--floor-pass', type=int, default=1024, help="(0b)'s decoded images per pass (default: 1024)")
    parser.add_argument('--rounds', type=int, default=6, help='interleaved rounds, the first untimed (default: 6)')
    parser.add_argument('--threads', type=int, default=0,
                        help="torch's threads here and in the command (OMP_NUM_THREADS); default: torch's choice")
    args = parser.parse_args(argv)
    if args.rounds < 3 or args.k < 2 or args.batch_size < 1 or args.floor_pass < 1 or args.epochs < 1:
        parser.error('--rounds must be >= 3 (the first is not timed), --k >= 2, the others >= 1')
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f'torchbearer_vae {torchbearer_vae.__version__}, torch {torch.__version__}, {torch.get_num_threads()} '
          f'threads, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}')
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = args.checkpoint or trained_checkpoint(args, folder)
        model = model_from_checkpoint(checkpoint)
        if type(model) is not VAE or model.likelihood != 'bernoulli':
            parser.error(f'the floor is written for the MLP VAE with a Bernoulli likelihood; {checkpoint} holds '
                         f'{model!r}')
        images = the_images(args, checkpoint)
        source = args.checkpoint or f'VAE 784-400-20 trained {args.epochs} epochs by torchbearer-vae train'
        print(f'{source}; {len(images):,} images (--split {args.split}), K={args.k}, batch {args.batch_size}: '
              f'{args.k * len(images):,} decoded images per estimate; {args.rounds} interleaved rounds, the first '
              f'untimed')
        whole = min(args.k, max(1, LARGEST_PASS // args.batch_size)) * args.batch_size
        runs = {
            '(0a)': lambda seed: floor(model, images, args.k, args.batch_size, whole, seed),
            '(0b)': lambda seed: floor(model, images, args.k, args.batch_size, args.floor_pass, seed),
            '(1)': lambda seed: library(model, images, args.k, args.batch_size, seed),
            '(2) K': lambda seed: command(args, checkpoint, args.k, os.path.join(folder, 'k.json')),
            '(2) 1': lambda seed: command(args, checkpoint, 1, os.path.join(folder, 'one.json')),
        }
        seconds, estimates, said = interleaved(runs, args.rounds)
        # the command's own figure, reproduced here: its ELBO then its IWAE bound, one generator (--seed 0)
        generator = torch.Generator().manual_seed(0)
        negative_elbo(model, images, batch_size=args.batch_size, generator=generator)
        reproduced = importance_weighted_nll(model, images, num_samples=args.k, batch_size=args.batch_size,
                                             generator=generator)
    report(args, len(images), whole, seconds, estimates, said, reproduced)
    print(f'load average at the end {os.getloadavg()[0]:.2f}')


if __name__ == '__main__':
    main()
