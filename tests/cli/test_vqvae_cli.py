"""`torchbearer-vae train --model vqvae` and the fitted prior of every run: what the run writes, its losses, the exact
resume, `sample --prior`, `reconstruct`, `evaluate`, and the one-line refusals around them, on the shared MNIST."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from torchbearer_vae import (
    VQVAE,
    CategoricalPrior,
    GaussianMixture,
    latent_prior_from_state_dict,
    latent_prior_state_dict,
    load_checkpoint,
    model_from_checkpoint,
    reconstruction_term,
    save_checkpoint,
)
from torchbearer_vae.cli import main

LIMIT = '1200'


def error_line(capsys):
    """The error: one line, the last on stderr (after at most the line saying which images are used)."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert 'Traceback' not in '\n'.join(lines) and len(lines) <= 3 and lines[-1].startswith('torchbearer-vae '), lines
    return lines[-1]


def train(mnist_dir, out, *more):
    return main(['train', '--dataset', f'idx:{mnist_dir}', '--limit', LIMIT, '--out', str(out), '--quiet', *more])


@pytest.fixture(scope='module')
def vq_run(mnist_dir, tmp_path_factory):
    """`train --model vqvae --codebook-size 64 --code-dim 16 --epochs 2` on 1,200 MNIST digits."""
    out = tmp_path_factory.mktemp('vq') / 'run'
    assert train(mnist_dir, out, '--model', 'vqvae', '--codebook-size', '64', '--code-dim', '16', '--epochs', '2') == 0
    return out


@pytest.mark.slow  # trains a VQ-VAE: 10-20 s
def test_a_vqvae_run_trains_the_package_vqvae_with_its_commitment_term_and_code_metrics(vq_run):
    checkpoint = load_checkpoint(vq_run / 'checkpoint.pt')
    model = model_from_checkpoint(checkpoint)
    assert isinstance(model, VQVAE) and (model.quantizer.num_codes, model.quantizer.code_dim) == (64, 16)
    assert model.latent_shape == (16, 7, 7) and model.likelihood == 'bernoulli'
    options = checkpoint['options']
    assert (options['model'], options['codebook_size'], options['code_dim'], options['latent_dim']) == \
        ('vqvae', 64, 16, None)
    for epoch in checkpoint['history']:  # the loss is the reconstruction term plus 0.25 times the commitment term
        assert epoch['loss'] == pytest.approx(epoch['recon'] + 0.25 * epoch['commitment'], rel=1e-4)
        assert epoch['val_loss'] == pytest.approx(epoch['val_recon'] + 0.25 * epoch['val_commitment'], rel=1e-4)
        assert 1 <= epoch['perplexity'] <= epoch['used_codes'] <= 64
    assert 'kl' not in checkpoint['history'][-1] and 'active_units' not in checkpoint['history'][-1]
    names = set(os.listdir(vq_run))
    assert {'reconstruction_001.png', 'reconstruction_002.png', 'metrics.csv', 'loss.png', 'summary.json'} <= names
    assert not any(name.startswith(('samples', 'kl_dims', 'latent_')) for name in names)  # no N(0, I), no (mu, logvar)
    header = (vq_run / 'metrics.csv').read_text().splitlines()[0].split(',')
    assert header[:6] == ['epoch', 'loss', 'recon', 'commitment', 'perplexity', 'used_codes']


@pytest.mark.slow  # trains a VQ-VAE: 10-20 s
def test_a_vqvae_run_reports_its_reconstruction_term_and_keeps_a_categorical_prior(vq_run, capsys):
    summary = json.loads((vq_run / 'summary.json').read_text())
    assert 'val_elbo_per_image' not in summary
    checkpoint = load_checkpoint(vq_run / 'checkpoint.pt')
    prior = latent_prior_from_state_dict(checkpoint['latent_prior'])
    assert isinstance(prior, CategoricalPrior) and prior.latent_shape == (16, 7, 7)
    assert torch.equal(prior.codebook, model_from_checkpoint(checkpoint).quantizer.codebook)
    assert main(['evaluate', '--checkpoint', str(vq_run / 'checkpoint.pt')]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 'negative_elbo_per_image' not in result and result['images'] == 120
    # the validation images' term, the same in the summary and evaluate, and far below an untrained model's 543
    assert result['reconstruction_term_per_image'] == pytest.approx(summary['val_recon_per_image'], rel=1e-5)
    assert 50 < result['reconstruction_term_per_image'] < 250 and result['reconstruction_psnr_db'] > 10


@pytest.mark.slow  # trains a VQ-VAE: 10-20 s
def test_sample_draws_a_vqvae_from_its_fitted_prior_and_refuses_n01(vq_run, capsys):
    out = vq_run / 'drawn.png'
    assert main(['sample', '--checkpoint', str(vq_run / 'checkpoint.pt'), '--out', str(out), '--num-images', '16']) == 0
    assert 'from the fitted prior' in capsys.readouterr().out
    grid = np.asarray(Image.open(out).convert('L'), dtype=float)
    tiles = [grid[2 + 30 * row:30 * row + 30, 2 + 30 * column:30 * column + 30] for row in range(4) for column in
             range(4)]
    assert grid.shape == (2 + 4 * 30, 2 + 4 * 30) and min(tile.std() for tile in tiles) > 10  # not blank
    assert len({tile.tobytes() for tile in tiles}) == 16  # 16 draws, 16 pictures
    assert main(['sample', '--checkpoint', str(vq_run / 'checkpoint.pt'), '--prior', 'normal', '--out',
                 str(vq_run / 'normal.png')]) == 2
    assert 'is a VQVAE: its codes have no N(0, I) prior to draw from; use --prior fitted' in error_line(capsys)
    assert not (vq_run / 'normal.png').exists()


@pytest.mark.slow  # trains a VQ-VAE: 10-20 s
def test_reconstruct_shows_a_vqvae_reconstructions(vq_run):
    out = vq_run / 'recon.png'
    assert main(['reconstruct', '--checkpoint', str(vq_run / 'checkpoint.pt'), '--out', str(out)]) == 0
    grid = np.asarray(Image.open(out).convert('L'), dtype=float) / 255
    inputs, recons = grid[2:30], grid[32:60]
    assert np.abs(recons - inputs).mean() < 0.1  # close to the inputs above them, not a blank or an average


@pytest.mark.slow  # trains a VQ-VAE: 10-20 s
def test_a_vqvae_run_resumes_exactly(mnist_dir, tmp_path):
    straight, halves = tmp_path / 'straight', tmp_path / 'halves'
    common = ('--model', 'vqvae', '--codebook-size', '32', '--code-dim', '8', '--limit', '600')
    assert train(mnist_dir, straight, *common, '--epochs', '2') == 0
    assert train(mnist_dir, halves, *common, '--epochs', '1') == 0
    assert 'latent_prior' in load_checkpoint(halves / 'checkpoint.pt')  # the run's last epoch, then
    assert main(['train', '--out', str(halves), '--epochs', '2', '--resume', '--quiet']) == 0
    one, other = load_checkpoint(straight / 'checkpoint.pt'), load_checkpoint(halves / 'checkpoint.pt')
    assert one['kl_term'] == other['kl_term'] and one['kl_term']['epoch'] == 2  # the commitment callback's position
    for name, value in one['model_state'].items():  # the codebook's moving averages included
        assert torch.equal(value, other['model_state'][name]), name
    assert one['history'] == other['history']
    assert torch.equal(one['latent_prior']['probabilities'], other['latent_prior']['probabilities'])


@pytest.mark.parametrize('args, expected', [
    (['--model', 'vqvae', '--beta', '2'], "--beta is of a Gaussian VAE's KL term; --model vqvae has none"),
    (['--model', 'vqvae', '--kl-warmup', '2'], "--kl-warmup is of a Gaussian VAE's KL term"),
    (['--model', 'vqvae', '--free-bits', '0.5'], "--free-bits is of a Gaussian VAE's KL term"),
    (['--model', 'vqvae', '--latent-dim', '8'], '--model vqvae has no --latent-dim: its latent map holds --code-dim'),
    (['--model', 'vqvae', '--hidden-dim', '8'], '--model vqvae has none: leave --hidden-dim out'),
    (['--model', 'vqvae', '--conditional'], 'there is no conditional --model vqvae'),
    (['--model', 'vqvae', '--model-arg', 'num_codes=8'], '--model-arg num_codes=... is an argument the command '
                                                         'passes itself: use --codebook-size'),
    (['--codebook-size', '8'], "--codebook-size is of --model vqvae's codebook; this run's --model (default) has none"),
    (['--model', 'conv', '--code-dim', '8'], "--code-dim is of --model vqvae's codebook; this run's --model conv"),
    (['--model', 'vqvae', '--model-arg', 'channels=[8, 8, 8]'], '--model vqvae needs images whose height and width '
                                                                 'are multiples of 8'),
    (['--model', 'vqvae', '--model-arg', 'decay=x'], "--model vqvae: decay must be a finite number > 0 and < 1, got "
                                                     "'x' (a --model-arg value)"),
    (['--model', 'conv', '--model-arg', 'channels=abc'], '--model conv: '),
    (['--model', 'vqvae', '--codebook-size', '1000000000000'], '--codebook-size 1000000000000 and --code-dim 64 make '
                                                                'a model too large to build'),
    # built on the meta device, then refused by the memory check, which names the codebook's options
    (['--model', 'vqvae', '--code-dim', '100000000'], 'training with --codebook-size 512, --code-dim 100000000 and '
                                                      '--batch-size 128 ('),
    (['--model', 'vqvae', '--model-arg', 'update=loss', '--model-arg', 'decay=0.9'],
     "--model-arg decay=... is the decay of the codebook's moving averages (update=ema); with --model-arg "
     "update=loss the codebook learns by its loss and nothing uses it"),
])
def test_options_that_do_not_go_with_the_latent_space_are_refused_in_one_line(args, expected, mnist_dir, tmp_path,
                                                                                capsys):
    assert train(mnist_dir, tmp_path / 'run', *args) == 2
    assert expected in error_line(capsys)
    assert not (tmp_path / 'run' / 'checkpoint.pt').exists()


@pytest.mark.slow  # trains a VQ-VAE: 10-20 s
def test_evaluate_refuses_importance_samples_for_a_vqvae_before_reading_data(vq_run, capsys):
    assert main(['evaluate', '--checkpoint', str(vq_run / 'checkpoint.pt'), '--importance-samples', '5',
                 '--dataset', 'idx:/nonexistent', '--out', str(vq_run / 'iwae.json')]) == 2
    assert 'is a VQVAE, which has none: leave it out' in error_line(capsys)


@pytest.fixture(scope='module')
def vae_run(mnist_dir, tmp_path_factory):
    """`train --epochs 3` of the default MLP VAE on 1,200 MNIST digits."""
    out = tmp_path_factory.mktemp('vae') / 'run'
    assert train(mnist_dir, out, '--epochs', '3') == 0
    return out


@pytest.mark.slow  # trains a VAE for 3 epochs
def test_a_vae_run_keeps_a_gaussian_mixture_fitted_to_its_posterior_means(vae_run, mnist):
    checkpoint = load_checkpoint(vae_run / 'checkpoint.pt')
    prior = latent_prior_from_state_dict(checkpoint['latent_prior'])
    assert isinstance(prior, GaussianMixture) and prior.dim == 20 and len(prior.weights) == 10
    assert prior.covariance == 'full'
    model = model_from_checkpoint(checkpoint)
    with torch.no_grad():  # it explains the codes of the training images better than N(0, I) does
        codes = model.encode(mnist.data[:1000].float().div(255).unsqueeze(1))[0].double()
    normal = torch.distributions.Normal(0.0, 1.0).log_prob(codes).sum(1).mean()
    assert prior.log_prob(codes).mean() > normal + 5


@pytest.mark.slow  # trains a VAE for 3 epochs
def test_sample_draws_a_vae_from_n01_by_default_and_from_its_fitted_prior_when_asked(vae_run, capsys):
    checkpoint = str(vae_run / 'checkpoint.pt')
    assert main(['sample', '--checkpoint', checkpoint, '--out', str(vae_run / 'normal.png')]) == 0
    assert 'fitted' not in capsys.readouterr().out
    assert main(['sample', '--checkpoint', checkpoint, '--prior', 'fitted', '--out', str(vae_run / 'fitted.png')]) == 0
    assert 'from the fitted prior' in capsys.readouterr().out
    normal, fitted = (np.asarray(Image.open(vae_run / name)) for name in ('normal.png', 'fitted.png'))
    assert normal.shape == fitted.shape and not np.array_equal(normal, fitted)


@pytest.mark.slow  # trains a VAE for 3 epochs
def test_evaluate_reports_a_vae_reconstruction_term_below_its_negative_elbo(vae_run, mnist, capsys):
    assert main(['evaluate', '--checkpoint', str(vae_run / 'checkpoint.pt'), '--split', 'all', '--limit', '300']) == 0
    result = json.loads(capsys.readouterr().out)
    model = model_from_checkpoint(str(vae_run / 'checkpoint.pt'))
    assert 0 < result['reconstruction_term_per_image'] < result['negative_elbo_per_image']
    first = mnist.data[:300].float().div(255).unsqueeze(1)
    assert result['reconstruction_term_per_image'] == pytest.approx(reconstruction_term(model, first), rel=1e-5)


def test_sample_refuses_a_saved_prior_that_does_not_fit_the_model(tmp_path, capsys):
    path = tmp_path / 'vq.pt'
    prior = GaussianMixture(torch.ones(1), torch.zeros(1, 3), torch.ones(1, 3))  # 3 values, not the model's 16
    save_checkpoint(str(path), VQVAE((1, 8, 8), num_codes=8, code_dim=4), latent_prior=latent_prior_state_dict(prior))
    assert main(['sample', '--checkpoint', str(path), '--out', str(tmp_path / 's.png')]) == 2
    line = error_line(capsys)
    assert "the fitted prior in " in line and "draws codes of 3 values, but its model's codes have 16" in line
    assert not (tmp_path / 's.png').exists()


def test_sample_without_a_fitted_prior_says_why_in_one_line(tmp_path, capsys):
    path = tmp_path / 'vq.pt'
    save_checkpoint(str(path), VQVAE(num_codes=8, code_dim=4))  # no run: no prior
    assert main(['sample', '--checkpoint', str(path)]) == 2
    line = error_line(capsys)
    assert 'a VQ-VAE needs a prior over its codes to be sampled, and' in line and 'holds no fitted prior' in line
    assert 'fit_latent_prior' in line
