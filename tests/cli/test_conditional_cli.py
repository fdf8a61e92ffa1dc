"""`torchbearer-vae train --conditional`, `sample --label`, reconstruct and evaluate of a ConditionalVAE, the latent
pictures of a run, the one-line refusals around them, and the quality of conditional samples on the shared MNIST."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image
from stand_ins import TAB10, classifier, rgb
from torchvision.utils import make_grid

from torchbearer_vae import (
    VAE,
    ConditionalVAE,
    TensorLoader,
    load_checkpoint,
    load_digits,
    model_from_checkpoint,
    negative_elbo,
    save_checkpoint,
    train_val_split,
)
from torchbearer_vae.cli import main


def pixels(path):
    return np.asarray(Image.open(path))


def error_line(capsys):
    """The error: one line, the last on stderr (after at most the line saying which images are used)."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert 'Traceback' not in '\n'.join(lines) and len(lines) <= 2 and lines[-1].startswith('torchbearer-vae '), lines
    return lines[-1]


@pytest.fixture(scope='module')
def conditional_run(tmp_path_factory):
    """`train --dataset digits --conditional --latent-dim 2 --hidden-dim 32 --epochs 2`: scikit-learn's labelled 8x8
    digits."""
    out = tmp_path_factory.mktemp('conditional') / 'run'
    assert main(['train', '--dataset', 'digits', '--conditional', '--latent-dim', '2', '--hidden-dim', '32',
                 '--epochs', '2', '--out', str(out), '--quiet']) == 0
    return out


def test_a_conditional_run_trains_a_conditional_vae_and_draws_its_latent_pictures(conditional_run):
    checkpoint = load_checkpoint(conditional_run / 'checkpoint.pt')
    model = model_from_checkpoint(checkpoint)
    assert isinstance(model, ConditionalVAE) and model.num_classes == 10 and model.latent_dim == 2
    assert checkpoint['options']['conditional'] is True and checkpoint['options']['model'] == 'mlp'
    names = sorted(os.listdir(conditional_run))
    assert 'latent_002.png' in names and 'kl_dims_002.png' in names  # the last epoch's, counted from 1
    scatter = pixels(conditional_run / 'latent_002.png')[..., :3]
    present = [c for c in TAB10 if (scatter == np.array(rgb(c), dtype=np.uint8)).all(-1).sum() > 0]
    assert len(present) == 10  # the labels reached the picture: one colour per digit of the validation split
    samples = pixels(conditional_run / 'samples_002.png')
    assert samples.shape[0] == 2 + 10 * 10  # SampleSaver: one row per class


def test_sample_label_draws_that_class_from_the_fixed_noise(conditional_run, tmp_path):
    checkpoint = conditional_run / 'checkpoint.pt'
    assert main(['sample', '--checkpoint', str(checkpoint), '--label', '3', '--num-images', '16', '--seed', '5',
                 '--out', str(tmp_path / 'threes.png')]) == 0
    model = model_from_checkpoint(checkpoint).eval()
    z = torch.randn(16, 2, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = make_grid(model.decode(z, 3), nrow=4, padding=2)[0].mul(255).add(0.5).clamp(0, 255).byte().numpy()
    got = pixels(tmp_path / 'threes.png')
    assert got.shape == (2 + 4 * 10, 2 + 4 * 10)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    with torch.no_grad():  # another label gives other images from the same noise
        assert not torch.allclose(model.decode(z, 3), model.decode(z, 8), atol=0.05)
    # without --label: one row per class, --num-images in all (rounded up to whole rows)
    assert main(['sample', '--checkpoint', str(checkpoint), '--out', str(tmp_path / 'all.png')]) == 0
    assert pixels(tmp_path / 'all.png').shape == (2 + 10 * 10, 2 + 7 * 10)


def test_reconstruct_and_evaluate_give_a_conditional_model_its_labels(conditional_run, tmp_path, capsys):
    checkpoint = conditional_run / 'checkpoint.pt'
    assert main(['reconstruct', '--checkpoint', str(checkpoint), '--num-images', '5', '--out',
                 str(tmp_path / 'recon.png')]) == 0
    recon = pixels(tmp_path / 'recon.png')
    assert recon.shape == (2 + 2 * 10, 2 + 5 * 10)
    model = model_from_checkpoint(checkpoint).eval()
    _, val = train_val_split(load_digits(), 0.1, seed=1)  # the run's split
    x = torch.stack([val[i][0] for i in range(5)])
    labels = torch.tensor([val[i][1] for i in range(5)])
    with torch.no_grad():
        expected = model(x, labels)[0]
    bottom = torch.from_numpy(recon[12:20, 2:10].copy()).float() / 255  # the first reconstruction, second row
    assert (bottom - expected[0, 0]).abs().max() <= 1 / 255 + 1e-6

    assert main(['evaluate', '--checkpoint', str(checkpoint), '--importance-samples', '5', '--out',
                 str(tmp_path / 'evaluation.json')]) == 0
    result = json.loads((tmp_path / 'evaluation.json').read_text())
    assert result['split'] == 'val' and result['images'] == len(val) == 179
    by_hand = negative_elbo(model, TensorLoader(val, batch_size=500), generator=torch.Generator().manual_seed(0))
    assert result['negative_elbo_per_image'] == pytest.approx(by_hand, rel=1e-6)
    assert result['iwae_nll_per_image'] < result['negative_elbo_per_image']


OUT = {'reconstruct': 'recon.png', 'evaluate': 'evaluation.json'}


def write_folder(root, classes):
    """8x8 grey PNGs: one subfolder per class when ``classes`` > 1, else the files at the top."""
    generator = np.random.default_rng(0)
    for index in range(40):
        folder = root / f'class{index % classes}' if classes > 1 else root
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(generator.integers(0, 256, (8, 8), dtype=np.uint8)).save(folder / f'{index}.png')
    return root


def test_refusals_are_one_line_with_exit_status_2(conditional_run, tmp_path, capsys):
    unlabelled = write_folder(tmp_path / 'flat', 1)
    assert main(['train', '--dataset', f'folder:{unlabelled}', '--conditional', '--out', str(tmp_path / 'a'),
                 '--quiet']) == 2
    assert '--conditional needs labelled images' in error_line(capsys)
    assert main(['train', '--dataset', 'digits', '--conditional', '--model', 'conv', '--out', str(tmp_path / 'b')]) \
        == 2
    assert 'no conditional --model conv' in error_line(capsys)
    checkpoint = str(conditional_run / 'checkpoint.pt')
    assert main(['sample', '--checkpoint', checkpoint, '--label', '10', '--out', str(tmp_path / 's.png')]) == 2
    assert 'it has 10 classes, 0 to 9' in error_line(capsys)
    plain = tmp_path / 'plain.pt'
    save_checkpoint(plain, VAE((1, 8, 8), latent_dim=2))
    assert main(['sample', '--checkpoint', str(plain), '--label', '1', '--out', str(tmp_path / 's.png')]) == 2
    assert 'is a VAE, which takes no labels: leave --label out' in error_line(capsys)
    assert not (tmp_path / 's.png').exists()
    # a conditional model and data without labels, or with labels out of its range: the user's mismatch, one line
    for command in ('reconstruct', 'evaluate'):
        assert main([command, '--checkpoint', checkpoint, '--dataset', f'folder:{unlabelled}',
                     '--out', str(tmp_path / OUT[command])]) == 2
        assert 'is conditional (a ConditionalVAE of 10 classes) and needs each image\'s label' in error_line(capsys)
    three = tmp_path / 'three'
    assert main(['train', '--dataset', f'folder:{write_folder(tmp_path / "abc", 3)}', '--conditional', '--epochs', '1',
                 '--hidden-dim', '16', '--out', str(three), '--quiet']) == 0
    capsys.readouterr()
    assert model_from_checkpoint(three / 'checkpoint.pt').num_classes == 3
    for command in ('reconstruct', 'evaluate'):
        assert main([command, '--checkpoint', str(three / 'checkpoint.pt'), '--dataset', 'digits',
                     '--out', str(tmp_path / OUT[command])]) == 2
        assert 'does not fit --dataset digits: labels must be class indices in [0, 3)' in error_line(capsys)


def test_resume_keeps_conditional_and_old_checkpoints_are_not_conditional(conditional_run, tmp_path, capsys):
    run = tmp_path / 'plain'
    assert main(['train', '--dataset', 'digits', '--epochs', '1', '--hidden-dim', '16', '--out', str(run),
                 '--quiet']) == 0
    assert main(['train', '--resume', '--out', str(run), '--epochs', '2', '--conditional']) == 2
    assert '--conditional True (the run used False)' in error_line(capsys)
    checkpoint = torch.load(run / 'checkpoint.pt', weights_only=True)  # as written before --conditional existed
    del checkpoint['options']['conditional']
    torch.save(checkpoint, run / 'checkpoint.pt')
    assert main(['train', '--resume', '--out', str(run), '--epochs', '2', '--quiet']) == 0
    resumed = load_checkpoint(run / 'checkpoint.pt')
    assert resumed['epoch'] == 2 and resumed['options']['conditional'] is False
    assert isinstance(model_from_checkpoint(resumed), VAE)
    # an unlabelled run writes the KL bars, not a grey scatter
    flat = tmp_path / 'flat_run'
    assert main(['train', '--dataset', f'folder:{write_folder(tmp_path / "flat", 1)}', '--epochs', '1',
                 '--hidden-dim', '16', '--out', str(flat), '--quiet']) == 0
    assert (flat / 'kl_dims_001.png').exists() and not (flat / 'latent_001.png').exists()


class MyVAE(VAE):
    """A user's own model: the command line imports its class only when the user names it."""


def test_a_users_own_model_needs_its_class_named_with_model(tmp_path, capsys):
    path = tmp_path / 'mine.pt'
    save_checkpoint(path, MyVAE((1, 8, 8), latent_dim=2))
    assert main(['sample', '--checkpoint', str(path), '--out', str(tmp_path / 's.png')]) == 2
    line = error_line(capsys)
    assert f'add --model {__name__}:MyVAE' in line and 'imported only when you name it' in line
    assert main(['sample', '--checkpoint', str(path), '--out', str(tmp_path / 's.png'), '--model',
                 f'{__name__}:MyVAE']) == 0  # what the line says works
    assert isinstance(model_from_checkpoint(path, model_class=MyVAE), MyVAE)  # and in Python


# -- quality: the check, through the command line --
@pytest.mark.slow
def test_conditional_samples_from_the_command_line_are_the_digits_asked_for(mnist, mnist_dir, tmp_path):
    out = tmp_path / 'cvae'
    assert main(['train', '--dataset', f'idx:{mnist_dir}', '--conditional', '--latent-dim', '2', '--epochs', '10',
                 '--out', str(out), '--quiet']) == 0
    summary = json.loads((out / 'summary.json').read_text())
    assert (summary['train_images'], summary['val_images']) == (9000, 1000)
    train, val = train_val_split(mnist, 0.1, seed=1)
    images = torch.stack([train[i][0] for i in range(len(train))])
    labels = torch.tensor([train[i][1] for i in range(len(train))])
    net = classifier(images, labels)
    with torch.no_grad():
        held_out = torch.stack([val[i][0] for i in range(len(val))])
        truth = torch.tensor([val[i][1] for i in range(len(val))])
        assert (net(held_out).argmax(1) == truth).float().mean() > 0.93  # the judge is good
    correct = 0
    for digit in range(10):
        path = tmp_path / f'digit_{digit}.png'
        assert main(['sample', '--checkpoint', str(out / 'checkpoint.pt'), '--label', str(digit), '--num-images',
                     '100', '--seed', str(digit), '--out', str(path)]) == 0
        grid = torch.from_numpy(pixels(path).astype(np.float32) / 255)  # 10 x 10 digits, padding 2
        assert grid.shape == (2 + 10 * 30, 2 + 10 * 30)
        samples = torch.stack([grid[2 + 30 * r:2 + 30 * r + 28, 2 + 30 * c:2 + 30 * c + 28]
                               for r in range(10) for c in range(10)]).unsqueeze(1)
        with torch.no_grad():
            correct += int((net(samples).argmax(1) == digit).sum())
    accuracy = correct / 1000
    print(f'command-line conditional samples labelled as asked: {accuracy:.1%}')
    assert accuracy >= 0.9, accuracy


def test_the_latent_pictures_are_drawn_every_10_epochs_and_at_the_last(tmp_path):
    out = tmp_path / 'run'
    assert main(['train', '--dataset', 'digits', '--epochs', '12', '--limit', '200', '--hidden-dim', '16', '--out',
                 str(out), '--quiet']) == 0
    latent = sorted(name for name in os.listdir(out) if name.startswith(('latent_', 'kl_dims_')))
    assert latent == ['kl_dims_010.png', 'kl_dims_012.png', 'latent_010.png', 'latent_012.png']  # 10th and 12th
    assert main(['train', '--resume', '--dataset', 'digits', '--epochs', '13', '--limit', '200', '--out', str(out),
                 '--quiet']) == 0
    assert (out / 'kl_dims_013.png').exists() and (out / 'latent_013.png').exists()  # the resumed run's last
    assert pixels(out / 'kl_dims_013.png').shape[:2] == pixels(out / 'kl_dims_010.png').shape[:2]
