"""TensorLoader: the same batches as a DataLoader, every item once per epoch, seeded shuffling, in a real Trial."""
import collections
import os

import pytest
import torch
import torchbearer
from stand_ins import assert_same_batches, batches
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset
from torchbearer import Trial
from torchbearer.callbacks import Callback

from torchbearer_vae import (
    LABEL,
    VAE,
    AutoEncoderDataset,
    IDXDataset,
    ImageDataset,
    TensorLoader,
    kld_loss,
    load_batch_with_labels,
    read_idx,
    train_val_split,
)


@pytest.fixture(scope='module')
def mnist_1000(mnist_dir):
    """The first 1,000 images of the shared MNIST split, an IDXDataset as ``mnist`` is: 7 full batches of 128 and a
    part one, read by the same code for a tenth of the time."""
    return IDXDataset.from_folder(mnist_dir, limit=1000)


@pytest.fixture(scope='module')
def torchvision_mnist(mnist_dir):
    """torchvision's own MNIST class (its PIL + transform ``__getitem__``) over the shared test split.

    torchvision cannot download here and reads only uncompressed files, so only the loading of the
    two arrays is replaced; every item still goes through torchvision's code.
    """
    from torchvision import datasets

    class LocalMNIST(datasets.MNIST):
        def _check_legacy_exist(self):
            return False

        def _check_exists(self):
            return True

        def _load_data(self):
            return (read_idx(os.path.join(mnist_dir, 't10k-images-idx3-ubyte.gz')),
                    read_idx(os.path.join(mnist_dir, 't10k-labels-idx1-ubyte.gz')).long())

    def make(transform, **kwargs):
        return LocalMNIST(mnist_dir, train=False, transform=transform, **kwargs)

    return make


class Opaque(Dataset):
    """A dataset the loader cannot look inside: it has to read every item once."""

    def __init__(self, dataset, size):
        self.dataset, self.size = dataset, size

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        return self.dataset[index]






# -- the same values as the per-item path --
def test_conversion_is_bit_identical_to_torchvision_to_tensor(mnist):
    from PIL import Image
    from torchvision.transforms.functional import to_tensor

    x, _ = next(iter(TensorLoader(mnist, batch_size=64)))
    expected = torch.stack([to_tensor(Image.fromarray(image.numpy(), mode='L')) for image in mnist.data[:64]])
    assert x.dtype == expected.dtype == torch.float32
    assert torch.equal(x, expected)  # bit for bit, not approximately


def test_stores_uint8_and_shares_the_dataset_memory(mnist):
    loader = TensorLoader(AutoEncoderDataset(mnist), batch_size=128)
    assert loader.nbytes == mnist.data.numel()  # one byte per pixel, no float copy, no target copy


@pytest.mark.parametrize('wrap', ['idx', 'autoencoder', 'flatten', 'subset', 'split', 'split_of_autoencoder',
                                  'tensor_dataset', 'float_tensor', 'opaque', 'opaque_subset', 'colour'])
def test_same_batches_as_dataloader(mnist_1000, wrap):
    mnist = mnist_1000
    data = {
        'idx': lambda: mnist,
        'autoencoder': lambda: AutoEncoderDataset(mnist),
        'flatten': lambda: AutoEncoderDataset(mnist, flatten_target=True),
        'subset': lambda: Subset(AutoEncoderDataset(mnist), list(range(900, 0, -3)) + [-1]),
        'split': lambda: train_val_split(mnist, 0.3, seed=3)[1],
        'split_of_autoencoder': lambda: AutoEncoderDataset(train_val_split(mnist, 0.3, seed=3)[1]),
        'tensor_dataset': lambda: TensorDataset(mnist.data[:700].float() / 255, mnist.targets[:700]),
        'float_tensor': lambda: mnist.data[:700].float(),
        'opaque': lambda: AutoEncoderDataset(Opaque(mnist, 700)),
        'opaque_subset': lambda: Subset(Opaque(mnist, 700), [5, 1, 600]),
        'colour': lambda: ImageDataset(torch.randint(0, 256, (300, 3, 5, 4), dtype=torch.uint8), torch.arange(300),
                                       channels_last=False),  # (3, 5, 4): either could be the channels
    }[wrap]()
    expected = batches(DataLoader(data, batch_size=128))
    assert_same_batches(expected, batches(TensorLoader(data, batch_size=128)))


def test_autoencoder_target_is_the_image_not_the_label(mnist):
    x, target = next(iter(TensorLoader(AutoEncoderDataset(mnist, flatten_target=True), batch_size=16)))
    assert target.shape == (16, 784)
    assert torch.equal(target, x.reshape(16, -1))
    assert target.data_ptr() != x.data_ptr()  # a copy, as collation gives: changing x leaves the target alone


def test_opaque_dataset_of_images_is_stored_as_uint8(mnist):
    loader = TensorLoader(Opaque(mnist, 300), batch_size=100)
    assert loader.nbytes == 300 * 784 + 300 * 8  # uint8 images (exactly k/255) and int64 labels


def test_uint8_tensor_is_read_as_images(mnist):
    x = next(iter(TensorLoader(mnist.data, batch_size=10)))
    assert torch.equal(x, mnist.data[:10].unsqueeze(1).float() / 255)


def test_torchvision_mnist_with_to_tensor(torchvision_mnist, mnist):
    from torchvision import transforms

    for transform in (transforms.ToTensor(), transforms.Compose([transforms.ToTensor()])):
        dataset = torchvision_mnist(transform)
        loader = TensorLoader(AutoEncoderDataset(dataset), batch_size=128)
        assert loader.nbytes == mnist.data.numel()  # recognised, not preloaded as floats
        assert_same_batches(batches(DataLoader(AutoEncoderDataset(dataset), batch_size=128), first=5),
                            batches(loader, first=5))
        # the last batch of 500: images 9,500 to 9,999, collated by a DataLoader over those images only (the
        # whole DataLoader would turn all 10,000 into PIL images for it)
        assert_same_batches(batches(DataLoader(Subset(dataset, range(9500, 10000)), batch_size=500)),
                            batches(TensorLoader(dataset, batch_size=500))[-1:])


def test_dataset_with_misleading_data_attribute_is_preloaded_exactly(mnist):
    class Shifted(Dataset):  # has .data, but its items are not ToTensor of it
        data = mnist.data[:50]

        def __len__(self):
            return 50

        def __getitem__(self, index):
            return self.data[(index + 1) % 50].float()

    dataset = Shifted()
    assert_same_batches(batches(DataLoader(dataset, batch_size=20)), batches(TensorLoader(dataset, batch_size=20)))


# -- epochs: every item once, shuffled, reproducible --
def test_every_image_exactly_once_per_epoch(mnist_1000):
    mnist = mnist_1000
    train, _ = train_val_split(AutoEncoderDataset(mnist), 0.1, seed=0)
    loader = TensorLoader(train, batch_size=128, shuffle=True, seed=1)
    expected = collections.Counter(mnist.data[i].numpy().tobytes() for i in train.ids)
    for _ in range(2):
        seen = collections.Counter()
        for x, target in loader:
            assert torch.equal(x, target)
            seen.update(image.numpy().tobytes() for image in x.mul(255).round().to(torch.uint8).squeeze(1))
        assert seen == expected


def test_shuffle_differs_between_epochs_and_is_reproducible(mnist):
    dataset = TensorDataset(torch.arange(1000))
    loader = TensorLoader(dataset, batch_size=100, shuffle=True, seed=7)
    first, second = torch.cat([b[0] for b in loader]), torch.cat([b[0] for b in loader])
    for order in (first, second):
        assert torch.equal(order.sort().values, torch.arange(1000))
    assert not torch.equal(first, second) and not torch.equal(first, torch.arange(1000))

    again = TensorLoader(dataset, batch_size=100, shuffle=True, seed=7)
    assert torch.equal(torch.cat([b[0] for b in again]), first)
    assert torch.equal(torch.cat([b[0] for b in again]), second)
    other = TensorLoader(dataset, batch_size=100, shuffle=True, seed=8)
    assert not torch.equal(torch.cat([b[0] for b in other]), first)


def test_no_seed_follows_torch_manual_seed(mnist):
    orders = []
    for _ in range(2):
        torch.manual_seed(5)
        loader = TensorLoader(TensorDataset(torch.arange(300)), batch_size=300, shuffle=True)
        orders.append(next(iter(loader))[0])
    assert torch.equal(orders[0], orders[1])


def test_resume_from_state_dict_continues_the_sequence():
    dataset = TensorDataset(torch.arange(50))
    loader = TensorLoader(dataset, batch_size=50, shuffle=True, seed=3)
    next(iter(loader))
    state = loader.state_dict()
    expected = next(iter(loader))[0]
    resumed = TensorLoader(dataset, batch_size=50, shuffle=True, seed=99)
    resumed.load_state_dict(state)
    assert torch.equal(next(iter(resumed))[0], expected)
    resumed.set_epoch(0)
    loader.set_epoch(0)
    assert torch.equal(next(iter(resumed))[0], next(iter(loader))[0])


def test_without_shuffle_the_order_is_the_dataset_order():
    loader = TensorLoader(TensorDataset(torch.arange(10)), batch_size=4)
    assert [b[0].tolist() for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [b[0].tolist() for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


@pytest.mark.parametrize('size, batch_size, drop_last, lengths', [
    (10, 4, False, [4, 4, 2]), (10, 4, True, [4, 4]), (12, 4, True, [4, 4, 4]), (12, 4, False, [4, 4, 4]),
    (3, 5, False, [3]), (1, 1, True, [1]),
])
def test_len_and_last_batch(size, batch_size, drop_last, lengths):
    loader = TensorLoader(torch.rand(size, 3), batch_size=batch_size, shuffle=True, drop_last=drop_last, seed=0)
    assert len(loader) == len(lengths)
    assert [len(batch) for batch in loader] == lengths


def test_device_keeps_the_storage_there(mnist):
    loader = TensorLoader(AutoEncoderDataset(Subset(mnist, [4, 2])), batch_size=2, shuffle=True, seed=0,
                          device='cpu')
    x, target = next(iter(loader))
    assert x.device.type == 'cpu' and loader.device == torch.device('cpu')
    assert {x[0, 0, 10, 10].item(), x[1, 0, 10, 10].item()} == {mnist[4][0][0, 10, 10].item(),
                                                               mnist[2][0][0, 10, 10].item()}


# -- in a real Trial --
def test_trains_like_a_dataloader_in_a_trial(mnist):
    """The Trial over TensorLoader computes exactly what it computes over a DataLoader of the same items."""
    train, val = train_val_split(AutoEncoderDataset(Subset(mnist, range(1200))), 0.25, seed=0)

    def run(train_data, val_data):
        torch.manual_seed(0)
        model = VAE(hidden_dim=64, latent_dim=8)
        trial = torchbearer.Trial(model, torch.optim.Adam(model.parameters(), lr=1e-3),
                                  torch.nn.BCELoss(reduction='sum'), metrics=['loss'],
                                  callbacks=[kld_loss()], verbose=0)
        history = trial.with_generators(train_data, val_data).run(epochs=2)
        return history, model.state_dict()

    fast_history, fast_weights = run(TensorLoader(train, 100), TensorLoader(val, 100))
    # generator= keeps DataLoader from drawing a seed from the global generator the model's noise uses
    slow_history, slow_weights = run(DataLoader(train, 100, generator=torch.Generator()),
                                     DataLoader(val, 100, generator=torch.Generator()))
    assert [h['loss'] for h in fast_history] == [h['loss'] for h in slow_history]
    assert [h['val_loss'] for h in fast_history] == [h['val_loss'] for h in slow_history]
    assert all(torch.equal(fast_weights[name], slow_weights[name]) for name in fast_weights)
    assert fast_history[1]['val_loss'] < fast_history[0]['val_loss']  # and it learns


def test_shuffled_loader_in_a_trial_runs_every_epoch(mnist):
    train, _ = train_val_split(AutoEncoderDataset(Subset(mnist, range(1000))), 0.1, seed=0)
    loader = TensorLoader(train, batch_size=128, shuffle=True, seed=0)
    model = VAE(hidden_dim=16, latent_dim=2)
    trial = torchbearer.Trial(model, torch.optim.Adam(model.parameters(), lr=1e-3),
                              torch.nn.BCELoss(reduction='sum'), callbacks=[kld_loss()], verbose=0)
    history = trial.with_train_generator(loader).run(epochs=3)
    assert len(history) == 3 and history[0]['train_steps'] == len(loader) == 8
    assert loader.epoch == 3  # one new order per epoch


# -- labels: (x, target, label) items, and state[LABEL] in a Trial --
def test_keep_labels_gives_triples_and_tensorloader_gives_the_dataloader_batches(mnist_1000):
    train, _ = train_val_split(AutoEncoderDataset(mnist_1000, keep_labels=True), val_fraction=0.1, seed=1)
    x, target, label = train[0]
    assert torch.equal(x, target) and isinstance(label, int)
    expected = list(DataLoader(train, batch_size=100))
    got = list(TensorLoader(train, batch_size=100))
    assert len(got) == len(expected) == 9
    for (x1, t1, y1), (x2, t2, y2) in zip(expected, got):
        assert torch.equal(x1, x2) and torch.equal(t1, t2) and torch.equal(y1, y2) and y1.dtype == y2.dtype
    assert x2.data_ptr() != t2.data_ptr()  # the target is a copy, as collation gives


def test_tensorloader_reads_no_item_for_labelled_batches(mnist):
    calls = []

    class Counting(ImageDataset):
        def __getitem__(self, index):
            calls.append(index)
            return super().__getitem__(index)

    loader = TensorLoader(AutoEncoderDataset(Counting(mnist.data, mnist.targets), keep_labels=True), batch_size=1000)
    calls.clear()  # construction checks the first and last items
    labels = torch.cat([batch[2] for batch in loader])
    assert calls == [] and torch.equal(labels, mnist.targets)


def zero_loss_of_state(state):
    return state[torchbearer.Y_PRED].sum() * 0


class Record(Callback):
    """Each step's inputs and labels, as the model saw them."""

    def __init__(self):
        self.steps = []

    def on_forward(self, state):
        self.steps.append((state[torchbearer.DATA], state[torchbearer.X].clone(), state[LABEL].clone()))

    on_forward_validation = on_forward


def test_every_training_and_validation_step_has_the_labels_of_its_images():
    labels = torch.arange(60) % 7
    images = (labels.float() / 10).view(-1, 1, 1, 1).expand(-1, 1, 4, 4).contiguous()  # each image says its label
    data = AutoEncoderDataset(TensorDataset(images, labels), keep_labels=True)
    record = Record()
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 16), nn.Unflatten(1, (1, 4, 4)))
    trial = Trial(model, torch.optim.SGD(model.parameters(), lr=0.0), zero_loss_of_state, callbacks=[record], verbose=0)
    trial.with_generators(TensorLoader(data, 16, shuffle=True, seed=0), DataLoader(data, batch_size=16))
    trial.with_loader(load_batch_with_labels).run(2)
    phases = [phase for phase, _, _ in record.steps]
    assert phases.count(torchbearer.TRAIN_DATA) == phases.count(torchbearer.VALIDATION_DATA) == 8
    for _, x, y in record.steps:
        assert y.dtype == torch.int64 and torch.allclose(x.mean((1, 2, 3)), y.float() / 10)


def test_load_batch_with_labels_refuses_pairs_with_the_fix():
    data = TensorDataset(torch.rand(8, 4), torch.rand(8, 4))
    trial = Trial(nn.Linear(4, 4), None, nn.MSELoss(), verbose=0).with_generators(DataLoader(data, batch_size=4))
    with pytest.raises(ValueError, match=r'keep_labels=True'):
        trial.with_loader(load_batch_with_labels).run(1)


# -- bad arguments and datasets it cannot serve --
@pytest.mark.parametrize('kwargs, error, match', [
    ({'batch_size': 0}, ValueError, 'batch_size must be an int >= 1, got 0'),
    ({'batch_size': -3}, ValueError, 'batch_size must be an int >= 1, got -3'),
    ({'batch_size': 1.5}, TypeError, 'batch_size must be an int >= 1, got 1.5'),
    ({'batch_size': True}, TypeError, 'batch_size must be an int >= 1, got True'),
    ({'shuffle': 'yes'}, TypeError, "shuffle must be True or False, got 'yes'"),
    ({'drop_last': 1}, TypeError, 'drop_last must be True or False, got 1'),
    ({'seed': -1}, ValueError, 'seed must be an int >= 0, got -1'),
    ({'seed': 2 ** 63}, ValueError, r'seed must be an int in \[0, 2\*\*63\), got 9223372036854775808'),
    ({'seed': 1.0}, TypeError, 'seed must be an int >= 0, got 1.0'),
    ({'channels_last': 1}, TypeError, 'channels_last must be True or False, got 1'),
    ({'device': 3}, TypeError, 'device must be None, a str or a torch.device, got int'),
    ({'device': 'gpu0'}, ValueError, "device 'gpu0' is not a torch device"),
    ({'batch_size': 20, 'drop_last': True}, ValueError, 'drop_last=True with batch_size=20 drops all 10 items'),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        TensorLoader(torch.rand(10, 2), **kwargs)


def test_bad_datasets(mnist, torchvision_mnist):
    from torchvision import transforms

    with pytest.raises(ValueError, match='empty dataset'):
        TensorLoader(torch.rand(0, 3))
    with pytest.raises(TypeError, match='needs a tensor, an array or a map-style dataset.*got int'):
        TensorLoader(5)
    with pytest.raises(ValueError, match=r'AutoEncoderDataset with transform=.*DataLoader'):
        TensorLoader(AutoEncoderDataset(mnist, transform=lambda x: x + 0.1 * torch.randn_like(x)))
    with pytest.raises(ValueError, match=r'AutoEncoderDataset with target_transform=.*DataLoader'):
        TensorLoader(AutoEncoderDataset(mnist, target_transform=lambda x: x))
    normalized = torchvision_mnist(transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1,), (0.3,))]))
    with pytest.raises(ValueError, match=r'LocalMNIST with transform=Compose.*DataLoader'):
        TensorLoader(train_val_split(normalized, 0.1, seed=0)[0])
    with pytest.raises(TypeError, match='transform=transforms.ToTensor()'):
        TensorLoader(torchvision_mnist(None))  # PIL images


def test_label_transform_is_refused_only_when_the_label_is_used(torchvision_mnist):
    from torchvision import transforms

    labelled = torchvision_mnist(transforms.ToTensor(), target_transform=lambda label: label % 2)
    with pytest.raises(ValueError, match='target_transform=.*of LocalMNIST to its labels'):
        TensorLoader(labelled)
    x, target = next(iter(TensorLoader(AutoEncoderDataset(labelled), batch_size=4)))  # labels dropped: fine
    assert torch.equal(x, target)


def test_bad_epoch_and_state_dict():
    loader = TensorLoader(torch.rand(4, 2))
    with pytest.raises(ValueError, match='epoch must be an int >= 0, got -1'):
        loader.set_epoch(-1)
    with pytest.raises(TypeError, match=r"state_dict\['seed'\] must be an int >= 0, got 'a'"):
        loader.load_state_dict({'seed': 'a', 'epoch': 0})


def test_a_loader_that_does_not_shuffle_leaves_the_global_random_state_alone():
    # A run resumed from a checkpoint restores the random state, then builds its loaders: a validation loader
    # that drew a seed it never uses would shift every later draw of z and every dropout mask.
    data = torch.rand(10, 1, 4, 4)
    before = torch.get_rng_state()
    TensorLoader(data, 5)
    assert torch.equal(torch.get_rng_state(), before)
    TensorLoader(data, 5, shuffle=True)  # a shuffling loader without a seed draws it, so manual_seed fixes it
    assert not torch.equal(torch.get_rng_state(), before)
