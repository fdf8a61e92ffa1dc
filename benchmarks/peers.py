"""The peers of ``bench_training.py --peers``: the reference VAE trained with pythae and with Lightning.

Each is a small complete program, written the way that library's own documentation shows, that
trains the model of ``torchbearer_vae.VAE`` (784-400-20: fc1 784->400, ReLU, fc21/fc22 400->20 for
mu and logvar, reparameterize, fc3 20->400, ReLU, fc4 400->784, sigmoid; the layers made in that
order, so that a seed gives the same initial weights), with the loss of the PyTorch VAE example
(BCE summed over the pixels + the analytic KL), batch 128, Adam(lr=1e-3) with ``--adam``'s options
(``fused=True`` by default, as ``torchbearer-vae train``), validating on the 1,000 held-out images
every epoch. The data is the split of ``bench_training.py`` (the 10,000 MNIST images of ``--data``,
``train_val_split(seed=1)``: 9,000 train + 1,000 validation), as float tensors ``(N, 1, 28, 28)`` in
[0, 1], read from a file that ``split`` writes once, so that a peer's process imports only torch
and its own library::

    python benchmarks/peers.py split --data ../shared/data/mnist --out /tmp/split.pt
    python benchmarks/peers.py pythae --split /tmp/split.pt --epochs 11 --out /tmp/pythae
    python benchmarks/peers.py lightning --split /tmp/split.pt --epochs 11 --out /tmp/lightning

The colour workload (``bench_training.py --workload colour``) trains the convolutional VAE of
``torchbearer_vae.ConvVAE`` for ``(3, 32, 32)`` images (the command's ``--model conv`` with its settled
``latent_dim=20``, ``hidden_dim=256``, ``channels=(32, 64)``, a Gaussian decoder) on a folder of 10,000
colour patches that ``patches`` writes once, each library reading the folder its documented way:
pythae a decoded array (its documented input; the decoding is in its process's time), Lightning
torchvision's ``ImageFolder`` and a ``DataLoader``. The 10,000 images are split 9,000 train + 1,000
validation by a seeded permutation::

    python benchmarks/peers.py patches --out /tmp/patches
    python benchmarks/peers.py pythae-conv --folder /tmp/patches --epochs 5 --out /tmp/pythae
    python benchmarks/peers.py lightning-conv --folder /tmp/patches --epochs 5 --out /tmp/lightning

A program prints, as its last line, the JSON ``{"val_loss": L}``: the validation loss per image
(nats) after its last epoch, as the library itself recorded it.
"""
import argparse
import importlib.util
import json
import os

import torch
import torch.nn.functional as F
from torch import nn

PEERS = {'pythae': 'pythae', 'Lightning': 'lightning'}  # each peer's name in the benchmark: the module it needs
INSTALL = 'pip install -e ".[bench]"'


def missing_peer(name, module=None):
    """None if the peer's library can be imported here; otherwise the line saying it is skipped.

    Args:
        name (str): The peer, a key of ``PEERS``.
        module (str or None): The module to look for; default, the peer's own.

    Returns:
        str or None: e.g. ``pythae: skipped, `pythae` is not installed (pip install -e ".[bench]" installs
        the peers)``.
    """
    module = module or PEERS[name]
    try:  # find_spec looks without importing (Lightning takes seconds to import)
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules, which cannot import
        found = False
    return None if found else f'{name}: skipped, `{module}` is not installed ({INSTALL} installs the peers)'


def write_split(folder, path):
    """The benchmark's split of the MNIST images in ``folder``, saved as float tensors for the peers."""
    from torchbearer_vae import AutoEncoderDataset, IDXDataset, train_val_split

    mnist = IDXDataset.from_folder(folder)
    train, val = train_val_split(AutoEncoderDataset(mnist), val_fraction=0.1, seed=1)
    images = mnist.data.unsqueeze(1).float().div(255)
    torch.save({'train': images[list(train.ids)], 'val': images[list(val.ids)]}, path)


# -- pythae: a custom encoder and decoder (pythae.models.nn.BaseEncoder/BaseDecoder returning a
# ModelOutput), pythae's own VAE and its loss ('bce': BCE summed over the pixels + KL, averaged over
# the batch, which Adam's steps do not see), trained by TrainingPipeline from tensors.
def train_pythae(train_x, val_x, *, epochs, out, seed, adam):
    """Train with pythae into ``out``; returns its last validation loss per image (nats)."""
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig
    from pythae.trainers.training_callbacks import TrainHistoryCallback

    class Encoder(BaseEncoder):
        def __init__(self):
            BaseEncoder.__init__(self)
            self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)

        def forward(self, x):
            hidden = torch.relu(self.fc1(x.reshape(len(x), -1)))
            return ModelOutput(embedding=self.fc21(hidden), log_covariance=self.fc22(hidden))

    class Decoder(BaseDecoder):
        def __init__(self):
            BaseDecoder.__init__(self)
            self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

        def forward(self, z):
            recon = torch.sigmoid(self.fc4(torch.relu(self.fc3(z))))
            return ModelOutput(reconstruction=recon.reshape(len(z), 1, 28, 28))

    torch.manual_seed(seed)  # the initial weights; the trainer seeds the rest from its config
    config = VAEConfig(input_dim=(1, 28, 28), latent_dim=20, reconstruction_loss='bce')
    model = VAE(model_config=config, encoder=Encoder(), decoder=Decoder())
    training_config = BaseTrainerConfig(
        output_dir=out, num_epochs=epochs, learning_rate=1e-3, per_device_train_batch_size=128,
        per_device_eval_batch_size=128, optimizer_cls='Adam', optimizer_params=adam or None, seed=seed)
    history = TrainHistoryCallback()
    pipeline = TrainingPipeline(training_config=training_config, model=model)
    pipeline(train_data=train_x, eval_data=val_x, callbacks=[history])
    return history.history['eval_loss'][-1]


# -- Lightning: a LightningModule (training_step, validation_step, configure_optimizers) over
# DataLoaders of a TensorDataset, and a Trainer with its defaults (a checkpoint every epoch) and a
# CSV logger; no progress bar, like `torchbearer-vae train --quiet`.
def vae_loss(recon, x, mu, logvar):
    """The PyTorch example's loss, summed over the batch (nats)."""
    bce = F.binary_cross_entropy(recon.reshape(len(x), -1), x.reshape(len(x), -1), reduction='sum')
    return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def train_lightning(train_x, val_x, *, epochs, out, seed, adam):
    """Train with Lightning into ``out``; returns its last validation loss per image (nats)."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader, TensorDataset

    class LitVAE(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(784, 400)
            self.fc21, self.fc22 = nn.Linear(400, 20), nn.Linear(400, 20)
            self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

        def forward(self, x):
            hidden = torch.relu(self.fc1(x.reshape(len(x), -1)))
            mu, logvar = self.fc21(hidden), self.fc22(hidden)
            # torchbearer_vae.VAE's reparameterize: a draw in training, the mean in evaluation
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
            return torch.sigmoid(self.fc4(torch.relu(self.fc3(z)))).reshape(x.shape), mu, logvar

        def training_step(self, batch, batch_idx):
            (x,) = batch
            recon, mu, logvar = self(x)
            loss = vae_loss(recon, x, mu, logvar)
            self.log('train_loss', loss / len(x), batch_size=len(x))
            return loss

        def validation_step(self, batch, batch_idx):
            (x,) = batch
            recon, mu, logvar = self(x)
            self.log('val_loss', vae_loss(recon, x, mu, logvar) / len(x), batch_size=len(x))

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3, **adam)

    L.seed_everything(seed)
    model = LitVAE()
    train_loader = DataLoader(TensorDataset(train_x), batch_size=128, shuffle=True)
    val_loader = DataLoader(TensorDataset(val_x), batch_size=128)
    trainer = L.Trainer(max_epochs=epochs, accelerator='cpu', devices=1, enable_progress_bar=False,
                        logger=CSVLogger(out), default_root_dir=out)
    trainer.fit(model, train_loader, val_loader)
    return trainer.callback_metrics['val_loss'].item()


# -- the colour workload: patches of scikit-learn's two sample photographs, and the ConvVAE in each peer --
PATCHES, PATCH_SIZE = 10000, 32


def write_patches(folder, count=PATCHES, size=PATCH_SIZE, seed=0):
    """``count`` colour patches ``size`` x ``size`` cut at random from scikit-learn's two sample photographs,
    written as PNGs into ``folder/patches/`` (one class subfolder, as ``ImageFolder`` needs)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    generator = np.random.default_rng(seed)
    os.makedirs(os.path.join(folder, 'patches'))
    for index in range(count):
        photo = photos[index % len(photos)]
        top = generator.integers(0, photo.shape[0] - size + 1)
        left = generator.integers(0, photo.shape[1] - size + 1)
        Image.fromarray(photo[top:top + size, left:left + size]).save(
            os.path.join(folder, 'patches', f'{index:05d}.png'))


def patch_files(folder):
    """The patches' paths, in order."""
    inner = os.path.join(folder, 'patches')
    return [os.path.join(inner, name) for name in sorted(os.listdir(inner))]


def decode_patches(folder):
    """The patches as a uint8 tensor ``(N, 3, H, W)``, decoded with Pillow, in file order."""
    import numpy as np
    from PIL import Image

    arrays = []
    for path in patch_files(folder):
        with Image.open(path) as image:
            arrays.append(np.asarray(image.convert('RGB')))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def patch_split(count, seed=1):
    """The 9,000 + 1,000 split of ``count`` images (indices): a permutation from ``seed``."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    validation = count // 10
    return order[validation:], order[:validation]


def conv_layers(channels=3, size=PATCH_SIZE, latent_dim=20, hidden_dim=256, widths=(32, 64)):
    """ConvVAE's layers, made in its order (a seed gives the same initial weights): ``(encoder, fc_mu,
    fc_logvar, decoder)``; the decoder returns the Gaussian means (no sigmoid)."""
    small = (widths[1], size // 4, size // 4)
    encoder = nn.Sequential(
        nn.Conv2d(channels, widths[0], 4, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(widths[0], widths[1], 4, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(small[0] * small[1] * small[2], hidden_dim), nn.ReLU())
    fc_mu, fc_logvar = nn.Linear(hidden_dim, latent_dim), nn.Linear(hidden_dim, latent_dim)
    decoder = nn.Sequential(
        nn.Linear(latent_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, small[0] * small[1] * small[2]), nn.ReLU(),
        nn.Unflatten(1, small),
        nn.ConvTranspose2d(widths[1], widths[0], 4, stride=2, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(widths[0], channels, 4, stride=2, padding=1))
    return encoder, fc_mu, fc_logvar, decoder


def gaussian_loss(recon, mu, logvar, *, x):
    """Half the summed squared error (a Gaussian of unit variance, pythae's ``'mse'``) + the analytic KL, summed."""
    return 0.5 * F.mse_loss(recon, x, reduction='sum') - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def train_pythae_conv(folder, *, epochs, out, seed, adam):
    """The ConvVAE with pythae, from the decoded patches (a float array, pythae's documented input)."""
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig
    from pythae.trainers.training_callbacks import TrainHistoryCallback

    images = decode_patches(folder).float().div(255).numpy()
    train, val = patch_split(len(images))
    torch.manual_seed(seed)
    encoder, fc_mu, fc_logvar, decoder = conv_layers()

    class Encoder(BaseEncoder):
        def __init__(self):
            BaseEncoder.__init__(self)
            self.encoder, self.fc_mu, self.fc_logvar = encoder, fc_mu, fc_logvar

        def forward(self, x):
            hidden = self.encoder(x)
            return ModelOutput(embedding=self.fc_mu(hidden), log_covariance=self.fc_logvar(hidden))

    class Decoder(BaseDecoder):
        def __init__(self):
            BaseDecoder.__init__(self)
            self.decoder = decoder

        def forward(self, z):
            return ModelOutput(reconstruction=self.decoder(z))

    config = VAEConfig(input_dim=(3, PATCH_SIZE, PATCH_SIZE), latent_dim=20, reconstruction_loss='mse')
    model = VAE(model_config=config, encoder=Encoder(), decoder=Decoder())
    training_config = BaseTrainerConfig(
        output_dir=out, num_epochs=epochs, learning_rate=1e-3, per_device_train_batch_size=128,
        per_device_eval_batch_size=128, optimizer_cls='Adam', optimizer_params=adam or None, seed=seed)
    history = TrainHistoryCallback()
    pipeline = TrainingPipeline(training_config=training_config, model=model)
    pipeline(train_data=images[train.numpy()], eval_data=images[val.numpy()], callbacks=[history])
    return history.history['eval_loss'][-1]


def train_lightning_conv(folder, *, epochs, out, seed, adam):
    """The ConvVAE with Lightning, from torchvision's ``ImageFolder`` (``ToTensor``) and ``DataLoader``s."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader, Subset
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import ToTensor

    class LitConvVAE(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.encoder, self.fc_mu, self.fc_logvar, self.decoder = conv_layers()

        def forward(self, x):
            hidden = self.encoder(x)
            mu, logvar = self.fc_mu(hidden), self.fc_logvar(hidden)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
            return self.decoder(z), mu, logvar

        def training_step(self, batch, batch_idx):
            x, _ = batch
            loss = gaussian_loss(*self(x), x=x)
            self.log('train_loss', loss / len(x), batch_size=len(x))
            return loss

        def validation_step(self, batch, batch_idx):
            x, _ = batch
            self.log('val_loss', gaussian_loss(*self(x), x=x) / len(x), batch_size=len(x))

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3, **adam)

    L.seed_everything(seed)
    model = LitConvVAE()
    images = ImageFolder(folder, transform=ToTensor())
    train, val = patch_split(len(images))
    train_loader = DataLoader(Subset(images, train.tolist()), batch_size=128, shuffle=True)
    val_loader = DataLoader(Subset(images, val.tolist()), batch_size=128)
    trainer = L.Trainer(max_epochs=epochs, accelerator='cpu', devices=1, enable_progress_bar=False,
                        logger=CSVLogger(out), default_root_dir=out)
    trainer.fit(model, train_loader, val_loader)
    return trainer.callback_metrics['val_loss'].item()


PROGRAMS = {'pythae': train_pythae, 'lightning': train_lightning}
FOLDER_PROGRAMS = {'pythae-conv': train_pythae_conv, 'lightning-conv': train_lightning_conv}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('program', choices=('split', 'patches') + tuple(PROGRAMS) + tuple(FOLDER_PROGRAMS))
    parser.add_argument('--data', help='split: the folder with the MNIST IDX files')
    parser.add_argument('--split', help='an MNIST peer: the file that `split` wrote')
    parser.add_argument('--folder', help='a colour peer (-conv): the folder that `patches` wrote')
    parser.add_argument('--out', required=True, help='split: the file to write; patches: the folder to write (new); '
                                                      'a peer: its output folder')
    parser.add_argument('--epochs', type=int, default=1)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--adam', choices=('fused', 'default'), default='fused',
                        help="Adam(fused=True) (default, as `torchbearer-vae train`) or Adam's default loop")
    args = parser.parse_args(argv)
    if args.program == 'split':
        if not args.data:
            parser.error('split needs --data FOLDER (the MNIST IDX files)')
        return write_split(args.data, args.out)
    if args.program == 'patches':
        return write_patches(args.out)
    adam = {'fused': True} if args.adam == 'fused' else {}
    if args.epochs < 1:
        parser.error('--epochs must be >= 1')
    if args.program in FOLDER_PROGRAMS:
        if not args.folder or not os.path.isdir(os.path.join(args.folder, 'patches')):
            parser.error(f'{args.program} needs --folder DIR, written by `python {__file__} patches --out DIR`')
        val_loss = FOLDER_PROGRAMS[args.program](args.folder, epochs=args.epochs, out=args.out, seed=args.seed,
                                                 adam=adam)
        return print(json.dumps({'val_loss': val_loss}))
    if not args.split or not os.path.isfile(args.split):
        parser.error(f'{args.program} needs --split FILE, written by `python {__file__} split --data DIR --out FILE`')
    data = torch.load(args.split, weights_only=True)
    val_loss = PROGRAMS[args.program](data['train'], data['val'], epochs=args.epochs, out=args.out, seed=args.seed,
                                      adam=adam)
    print(json.dumps({'val_loss': val_loss}))


if __name__ == '__main__':
    main()
