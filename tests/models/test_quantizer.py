"""The vector quantizer: nearest codes, straight-through gradients, the EMA equations, restarts, the two updates."""
import pytest
import torch

from torchbearer_vae import QuantizerOutput, VectorQuantizer


def _quantizer(codes, **kwargs):
    """A quantizer whose codebook is ``codes`` (and, for EMA, its sums ``codes``, counts 1), no restarts."""
    codes = torch.as_tensor(codes, dtype=torch.float32)
    kwargs = {'init': 'uniform', 'restart_below': 0.0, **kwargs}
    quantizer = VectorQuantizer(codes.shape[0], codes.shape[1], **kwargs)
    with torch.no_grad():
        quantizer.codebook.copy_(codes)
        if quantizer.update == 'ema':
            quantizer.code_sum.copy_(codes)
    return quantizer


def test_the_nearest_code_is_chosen():
    torch.manual_seed(0)
    quantizer = VectorQuantizer(32, 3, init='uniform').eval()
    with torch.no_grad():
        quantizer.codebook.normal_()
    z = torch.randn(4, 3, 5, 6)
    out = quantizer(z)
    flat = z.movedim(1, -1).reshape(-1, 3)
    brute = (flat[:, None, :] - quantizer.codebook[None]).pow(2).sum(-1).argmin(1)
    assert isinstance(out, QuantizerOutput)
    assert out.indices.shape == (4, 5, 6) and out.indices.dtype == torch.int64
    assert torch.equal(out.indices.reshape(-1), brute)
    assert torch.allclose(out.quantized, quantizer.codebook[brute].reshape(4, 5, 6, 3).movedim(-1, 1))
    assert torch.allclose(quantizer.lookup(out.indices), out.quantized)


def test_the_gradient_goes_straight_through_to_the_encoder():
    quantizer = _quantizer([[0.0, 0.0], [1.0, 1.0]])
    z = torch.tensor([[0.2, -0.1], [0.7, 1.3], [1.1, 0.9]], requires_grad=True)
    out = quantizer(z)
    quantized = out.quantized.detach().requires_grad_()
    (quantized ** 3).sum().backward()  # the gradient at the codes, not at z
    out.quantized.pow(3).sum().backward()
    assert torch.equal(z.grad, quantized.grad)
    assert torch.equal(quantized.grad, 3 * torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]))


def test_one_ema_step_follows_the_equations():
    quantizer = _quantizer([[0.0, 0.0], [1.0, 1.0]], decay=0.5, eps=1e-5, commitment_weight=0.25)
    z = torch.tensor([[0.1, 0.0], [0.9, 1.0], [1.0, 1.2]])
    out = quantizer(z)
    # the batch: code 0 gets (0.1, 0); code 1 gets (0.9, 1.0) and (1.0, 1.2)
    assert out.indices.tolist() == [0, 1, 1]
    assert torch.allclose(out.quantized, torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]))  # the codes before
    # N = 0.5 * 1 + 0.5 * n = (1.0, 1.5); m = 0.5 * e + 0.5 * s = (0.05, 0), (1.45, 1.6)
    assert torch.allclose(quantizer.cluster_size, torch.tensor([1.0, 1.5]))
    assert torch.allclose(quantizer.code_sum, torch.tensor([[0.05, 0.0], [1.45, 1.6]]))
    total, eps = 2.5, 1e-5
    smoothed = [(1.0 + eps) / (total + 2 * eps) * total, (1.5 + eps) / (total + 2 * eps) * total]
    expected = torch.tensor([[0.05 / smoothed[0], 0.0], [1.45 / smoothed[1], 1.6 / smoothed[1]]])
    assert torch.allclose(quantizer.codebook, expected, atol=1e-7)
    # per image: ||z - q||^2
    assert torch.allclose(out.commitment, torch.tensor([0.01, 0.01, 0.04]))
    assert torch.allclose(out.loss, 0.25 * out.commitment) and out.codebook is None
    assert out.used_codes.item() == 2
    assert out.perplexity.item() == pytest.approx(torch.tensor([1 / 3, 2 / 3]).log().mul(
        torch.tensor([-1 / 3, -2 / 3])).sum().exp().item())


def test_nothing_is_updated_in_eval_mode():
    quantizer = VectorQuantizer(8, 2)  # init='data': not initialised before a training call
    before = {name: value.clone() for name, value in quantizer.state_dict().items()}
    quantizer.eval()
    quantizer(torch.randn(6, 2))
    with torch.no_grad():
        quantizer(torch.randn(6, 2, 3, 3))
    after = quantizer.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert not quantizer.initialised


def test_the_first_training_batch_initialises_the_codes_once():
    torch.manual_seed(2)
    quantizer = VectorQuantizer(3, 2, decay=0.999999, restart_below=0.0)
    assert not quantizer.initialised
    z = torch.randn(5, 2)
    quantizer(z)
    assert quantizer.initialised
    # decay ~1: the codes are where they started, three distinct vectors of the batch
    nearest = torch.cdist(quantizer.codebook, z).min(1)
    assert nearest.values.max() < 1e-4 and len(set(nearest.indices.tolist())) == 3
    first = quantizer.codebook.clone()
    quantizer(torch.randn(5, 2) + 10)  # not initialised again: the codes only move by the moving averages
    assert (quantizer.codebook - first).abs().max() < 1e-3


def test_a_dead_code_is_restarted_onto_an_encoder_output():
    far = [100.0, 100.0]
    quantizer = _quantizer([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], far], decay=0.5, restart_below=0.5)
    torch.manual_seed(3)
    z = torch.cat([torch.randn(4, 2) * 0.01 + torch.tensor(point) for point in ([0.0, 0.0], [1.0, 0.0], [0.0, 1.0])])
    quantizer(z)
    # N = 0.5 * 1 + 0.5 * n = (2.5, 2.5, 2.5, 0.5); an even share 8 / 4 = 2, the threshold half of it: 1
    assert (z - quantizer.codebook[3]).norm(dim=1).min() < 1e-6
    assert torch.allclose(quantizer.cluster_size, torch.tensor([2.5, 2.5, 2.5, 1.0]))
    assert torch.allclose(quantizer.code_sum[3], quantizer.codebook[3] * 1.0)
    assert (quantizer.codebook[:3] - torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])).abs().max() < 0.05


def test_update_loss_trains_the_codebook_through_the_codebook_term_only():
    quantizer = _quantizer([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]], update='loss', commitment_weight=0.25)
    assert isinstance(quantizer.codebook, torch.nn.Parameter)
    assert 'code_sum' not in quantizer.state_dict()
    z = torch.tensor([[0.1, 0.0], [0.9, 1.0], [1.0, 1.2]], requires_grad=True)
    out = quantizer(z)
    assert torch.equal(quantizer.codebook.detach(), torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]))  # no EMA
    assert torch.allclose(out.codebook, out.commitment)  # the same value, other gradients
    out.loss.sum().backward()
    q = torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    # d/de_k sum ||sg(z) - e_k||^2 = 2 sum (e_k - z) over the vectors that chose k; code 2 was not chosen
    expected = torch.stack([2 * (q[0] - z[0]), 2 * (2 * q[1] - z[1] - z[2]), torch.zeros(2)]).detach()
    assert torch.allclose(quantizer.codebook.grad, expected)
    assert torch.allclose(z.grad, 0.25 * 2 * (z - q).detach())  # the commitment term only


def test_update_loss_restarts_dead_codes_and_still_back_propagates():
    quantizer = _quantizer([[0.0, 0.0], [100.0, 100.0]], update='loss', decay=0.5, restart_below=1.0)
    z = torch.randn(6, 2, requires_grad=True)
    out = quantizer(z)
    out.loss.sum().backward()  # the restart changed the codebook in place after the lookup
    assert (z - quantizer.codebook[1]).norm(dim=1).min() < 1e-6
    assert quantizer.codebook.grad[1].abs().sum() == 0 and quantizer.codebook.grad[0].abs().sum() > 0


def test_update_ema_gives_the_codebook_no_gradient():
    quantizer = _quantizer([[0.0, 0.0], [1.0, 1.0]])
    z = torch.randn(5, 2, requires_grad=True)
    out = quantizer(z)
    out.loss.sum().backward()
    assert not quantizer.codebook.requires_grad and list(quantizer.parameters()) == []
    assert torch.allclose(z.grad, 0.25 * 2 * (z - out.quantized).detach())


def test_perplexity_counts_how_evenly_codes_are_used():
    quantizer = _quantizer([[0.0], [1.0], [2.0], [3.0]]).eval()
    one = quantizer(torch.zeros(8, 1))
    two = quantizer(torch.tensor([[0.0], [1.0], [0.0], [1.0]]))
    assert one.perplexity.item() == pytest.approx(1.0) and one.used_codes.item() == 1
    assert two.perplexity.item() == pytest.approx(2.0) and two.used_codes.item() == 2


def test_half_precision_does_not_change_the_chosen_codes():
    torch.manual_seed(4)
    quantizer = VectorQuantizer(64, 8, init='uniform').eval()
    with torch.no_grad():
        quantizer.codebook.normal_()
    z = torch.randn(16, 8)
    expected = quantizer(z).indices
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert torch.equal(quantizer(z).indices, expected)
    out = quantizer(z.double())
    assert torch.equal(out.indices, expected) and out.quantized.dtype == torch.float64


@pytest.mark.parametrize('update', ['ema', 'loss'])
def test_state_dict_round_trips_through_a_weights_only_file(tmp_path, update):
    torch.manual_seed(5)
    quantizer = VectorQuantizer(8, 3, update=update)
    quantizer(torch.randn(20, 3))
    torch.save(quantizer.state_dict(), tmp_path / 'quantizer.pt')
    loaded = VectorQuantizer(8, 3, update=update)
    loaded.load_state_dict(torch.load(tmp_path / 'quantizer.pt', weights_only=True))
    assert loaded.initialised
    for name, value in quantizer.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    z = torch.randn(6, 3)
    assert torch.equal(loaded.eval()(z).indices, quantizer.eval()(z).indices)


@pytest.mark.parametrize('kwargs, error, message', [
    ({'num_codes': 0}, ValueError, 'num_codes must be an int >= 1, got 0'),
    ({'code_dim': 2.5}, TypeError, 'code_dim must be an int >= 1, got 2.5'),
    ({'update': 'kmeans'}, ValueError, "update must be one of 'ema', 'loss', got 'kmeans'"),
    ({'decay': 1.0}, ValueError, 'decay must be a finite number > 0 and < 1, got 1.0'),
    ({'decay': 0}, ValueError, 'decay must be a finite number > 0 and < 1'),
    ({'commitment_weight': -1}, ValueError, 'commitment_weight must be a finite number >= 0'),
    ({'eps': 0}, ValueError, 'eps must be a finite number > 0'),
    ({'restart_below': 2}, ValueError, 'restart_below must be a finite number >= 0 and <= 1'),
    ({'init': 'normal'}, ValueError, "init must be one of 'data', 'uniform'"),
])
def test_bad_arguments_raise_one_clear_line(kwargs, error, message):
    with pytest.raises(error, match=message) as raised:
        VectorQuantizer(**kwargs)
    assert '\n' not in str(raised.value)


def test_bad_inputs_raise_one_clear_line():
    quantizer = VectorQuantizer(4, 3)
    with pytest.raises(ValueError, match=r'code_dim=3\) needs vectors along dimension 1, .* got shape \(2, 8, 8, 3\)'):
        quantizer(torch.randn(2, 8, 8, 3))
    with pytest.raises(TypeError, match='needs a floating point tensor, got a torch.int64 Tensor'):
        quantizer(torch.zeros(2, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r'lookup needs indices in \[0, 4\), got values from 0 to 4'):
        quantizer.lookup(torch.tensor([[0, 4]]))
    with pytest.raises(TypeError, match='lookup needs an integer tensor'):
        quantizer.lookup(torch.zeros(2, 3))


def test_nearest_gives_the_indices_of_a_call_without_updating():
    torch.manual_seed(6)
    quantizer = VectorQuantizer(16, 3)
    z = torch.randn(2, 3, 4, 4)
    indices = quantizer.nearest(z)  # training mode, but no update: still not initialised
    assert not quantizer.initialised and indices.shape == (2, 4, 4)
    assert torch.equal(indices, quantizer.eval()(z).indices)


def test_of_finds_a_models_quantizer_and_nothing_else():
    from torchbearer_vae import VAE, VQVAE

    model = VQVAE((1, 8, 8), num_codes=8, code_dim=4, channels=(4, 8))
    assert VectorQuantizer.of(model) is model.quantizer
    assert VectorQuantizer.of(VAE()) is None and VectorQuantizer.of(object()) is None
    plain = torch.nn.Module()
    plain.quantizer = torch.nn.Linear(2, 2)  # a `quantizer` that is not one
    assert VectorQuantizer.of(plain) is None
