"""The VQ-VAE: both ways of calling it, its loss in a real Trial, decoding codes, and its rebuild from a checkpoint."""
import pytest
import torch
import torchbearer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchbearer import Trial

from torchbearer_vae import (
    CODEBOOK,
    COMMITMENT,
    PERPLEXITY,
    USED_CODES,
    VQVAE,
    KLPerDimension,
    MissingStateError,
    QuantizerOutput,
    SampleSaver,
    codebook_loss,
    commitment_loss,
    importance_weighted_nll,
    load_checkpoint,
    model_from_checkpoint,
    negative_elbo,
    save_checkpoint,
)

SMALL = {'input_shape': (1, 8, 8), 'num_codes': 8, 'code_dim': 4, 'channels': (4, 8)}


def test_forward_both_ways():
    model = VQVAE(**SMALL)
    x = torch.rand(3, 1, 8, 8)
    recon, output = model(x)
    assert recon.shape == x.shape and isinstance(output, QuantizerOutput)
    assert model.latent_shape == (4, 2, 2) and model.latent_dim == 16 and output.indices.shape == (3, 2, 2)
    assert recon.min() >= 0 and recon.max() <= 1
    state = {}
    assert model(x.reshape(3, 64), state=state).shape == (3, 64)
    assert state[COMMITMENT].shape == (3,) and CODEBOOK not in state  # EMA: no codebook term
    assert 1 <= float(state[PERPLEXITY]) <= 8 and 1 <= int(state[USED_CODES]) <= 8
    expected = model.reconstruction_loss(recon, x) + output.loss.sum()
    assert torch.equal(model.loss(recon, output, x), expected)


def test_decode_quantizes_maps_and_flat_codes_alike():
    model = VQVAE(**SMALL, likelihood='gaussian').eval()
    z = model.encode(torch.rand(2, 1, 8, 8))
    images = model.decode(z)
    assert images.shape == (2, 1, 8, 8)
    assert torch.equal(model.decode(z.flatten(1)), images)
    assert torch.equal(model.decode_indices(model.quantizer.nearest(z)), images)
    recon, _ = model(torch.rand(2, 1, 8, 8))
    assert recon.shape == (2, 1, 8, 8)


@pytest.mark.slow  # about 2 s: a Trial's first run
@pytest.mark.parametrize('update', ['ema', 'loss'])
def test_a_trial_adds_the_quantizers_terms_through_the_callbacks_and_shows_its_metrics(update):
    torch.manual_seed(0)
    model = VQVAE(**SMALL, update=update)
    images = (torch.rand(16, 1, 8, 8) > 0.5).float()
    loader = DataLoader(TensorDataset(images, images), batch_size=8)
    callbacks = [commitment_loss(0.25)] + ([codebook_loss()] if update == 'loss' else [])
    trial = Trial(model, torch.optim.Adam(model.parameters(), lr=1e-3), model.reconstruction_loss,
                  metrics=['loss', 'recon', 'commitment', 'perplexity', 'used_codes'], callbacks=callbacks,
                  verbose=0).with_generators(loader, val_generator=loader)
    history = trial.run(epochs=2)
    last = history[-1]
    assert {'loss', 'recon', 'commitment', 'perplexity', 'used_codes', 'val_loss', 'val_perplexity'} <= set(last)
    assert 1 <= last['perplexity'] <= 8 and 1 <= last['used_codes'] <= 8 and last['commitment'] > 0
    # the loss is the reconstruction term plus the weighted quantizer terms, summed over the batch
    model.eval()
    with torch.no_grad():
        recon, output = model(images[:8])
        expected = (model.reconstruction_loss(recon, images[:8]) + 0.25 * output.commitment.sum()
                    + (output.codebook.sum() if update == 'loss' else 0))
        state = {torchbearer.MODEL: model}
        recon = model(images[:8], state=state)
        state[torchbearer.LOSS] = model.reconstruction_loss(recon, images[:8])
        for callback in callbacks:
            callback.on_criterion_validation(state)
    assert torch.allclose(state[torchbearer.LOSS], expected)
    assert model.quantizer.initialised


def test_the_quantizer_callbacks_say_what_is_missing():
    state = {torchbearer.LOSS: torch.tensor(1.0)}
    with pytest.raises(MissingStateError, match=r"codebook_loss needs state\[torchbearer_vae\.CODEBOOK\]"
                                                r".*update='ema'.*leave codebook_loss out"):
        codebook_loss().on_criterion(state)
    with pytest.raises(MissingStateError, match=r'commitment_loss needs state\[torchbearer_vae\.COMMITMENT\].*VQVAE'):
        commitment_loss().on_criterion(state)
    with pytest.raises(ValueError, match="reduction must be one of 'sum', 'batchmean'"):
        commitment_loss(reduction='none')


def test_the_quantizer_metrics_name_what_they_read_when_nothing_stored_it():
    from torchbearer_vae import QuantizerMetric

    metric = QuantizerMetric('perplexity')
    with pytest.raises(MissingStateError, match=r"'perplexity' metric reads "
                                                r"state\[torchbearer_vae\.PERPLEXITY\].*vector quantizer"):
        metric.process({})
    with pytest.raises(ValueError, match="QuantizerMetric's name must be one of"):
        QuantizerMetric('codes')


def test_what_needs_a_gaussian_posterior_or_n01_says_so_before_training_or_in_one_line(tmp_path):
    model, images = VQVAE(**SMALL), torch.rand(16, 1, 8, 8)
    trained = []

    class Steps(torchbearer.callbacks.Callback):
        def on_step_training(self, state):
            trained.append(1)

    trial = Trial(model, torch.optim.Adam(model.parameters()), model.reconstruction_loss, verbose=0,
                  callbacks=[commitment_loss(), SampleSaver(tmp_path), Steps()])
    trial.with_generators(DataLoader(TensorDataset(images, images), 8), DataLoader(TensorDataset(images, images), 8))
    with pytest.raises(TypeError, match=r'VQVAE has a codebook and no N\(0, I\) prior: after training, give it '
                                        r'prior=fit_latent_prior'):
        trial.run(1)
    assert trained == []  # refused before the first step
    for needs_posterior in (lambda: negative_elbo(model, images), lambda: importance_weighted_nll(model, images),
                            lambda: KLPerDimension(tmp_path).draw(model, {torchbearer.X: images})):
        with pytest.raises(TypeError, match=r'must return \(mu, logvar\), a Gaussian posterior, got .* this is for '
                                            r'VAEs \(a VQ-VAE or a plain autoencoder has no posterior'):
            needs_posterior()


def test_the_model_is_rebuilt_from_a_checkpoint_by_itself(tmp_path):
    torch.manual_seed(1)
    model = VQVAE(**SMALL, update='loss', likelihood='gaussian', sigma=None)
    model(torch.rand(4, 1, 8, 8))  # a training call: the codebook initialised from the batch
    save_checkpoint(tmp_path / 'c.pt', model)
    assert load_checkpoint(tmp_path / 'c.pt')['model']['class'] == 'torchbearer_vae.models.vqvae:VQVAE'
    rebuilt = model_from_checkpoint(tmp_path / 'c.pt')
    assert type(rebuilt) is VQVAE and rebuilt.config == model.config and rebuilt.config['update'] == 'loss'
    for name, value in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[name], value), name
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(rebuilt(x)[0], model.eval()(x)[0])


def test_a_subclass_records_its_own_arguments():
    class Wider(VQVAE):
        def __init__(self, input_shape=(1, 8, 8), *, width=8, dropout=0.0):
            super().__init__(input_shape, num_codes=4, code_dim=2, channels=(width,))
            self.dropout = nn.Dropout(dropout)

    assert Wider(width=6).config == {'input_shape': (1, 8, 8), 'width': 6, 'dropout': 0.0}
    assert VQVAE(**SMALL).config['num_codes'] == 8


@pytest.mark.parametrize('kwargs, error, message', [
    ({'input_shape': (1, 10, 10)}, ValueError, 'needs height and width that are multiples of 4'),
    ({'input_shape': (28, 28)}, ValueError, 'input_shape must be 3 ints >= 1'),
    ({'update': 'adam'}, ValueError, "update must be one of 'ema', 'loss'"),
    ({'num_codes': 0}, ValueError, 'num_codes must be an int >= 1'),
    ({'likelihood': 'poisson'}, ValueError, "likelihood must be one of 'bernoulli', 'gaussian'"),
])
def test_bad_arguments_raise_one_clear_line(kwargs, error, message):
    with pytest.raises(error, match=message):
        VQVAE(**kwargs)


def test_bad_images_raise_one_clear_line():
    model = VQVAE(**SMALL)
    with pytest.raises(ValueError, match=r'VQVAE\(input_shape=\(1, 8, 8\)\) got inputs of shape \(2, 8, 8, 3\)'):
        model(torch.rand(2, 8, 8, 3))
    with pytest.raises(TypeError, match='VQVAE needs a floating point tensor of images, got a torch.uint8 Tensor'):
        model(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
