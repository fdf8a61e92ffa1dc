"""What train says at the end of a run that did not learn what it could (too short, collapsed KL), and of one that did:
nothing."""
from torchbearer_vae.cli.advice import EPOCH_STEPS, MIN_STEPS, epoch_passes, run_advice

OPTIONS = {'beta': 1.0, 'likelihood': 'gaussian', 'sigma': 'calibrated', 'batch_size': 128}


def history(epochs, active=12.0):
    return [{'loss': 100.0 - epoch, 'val_loss': 101.0 - epoch, 'val_active_units': active} for epoch in range(epochs)]


def test_a_healthy_run_gets_no_advice():
    assert run_advice(history(10), steps=10 * 120, batches=120, options=OPTIONS) == []
    assert run_advice(history(10), steps=MIN_STEPS, batches=MIN_STEPS // 10, options=OPTIONS) == []


def test_a_run_of_too_few_steps_says_so_and_how_many_epochs_would_do():
    # The run: 450 training pictures in batches of 128 for 30 epochs, 4 batches an epoch.
    lines = run_advice(history(30), steps=120, batches=4, options=OPTIONS)
    assert len(lines) == 1
    assert 'only 120 optimizer steps (30 epochs of 4 batches)' in lines[0]
    assert f'--epochs {MIN_STEPS // 4}' in lines[0] and 'smaller --batch-size (this run: 128)' in lines[0]
    assert 'too few for a VAE' in lines[0] and 'every sample alike' in lines[0]


def test_a_short_vqvae_run_is_told_of_its_own_symptoms_not_a_vae_s():
    # a VQ-VAE draws no samples while it trains: its short run shows as grey reconstructions from a few codes
    lines = run_advice(history(1), steps=71, batches=71, options={'model': 'vqvae', 'batch_size': 128})
    assert len(lines) == 1
    assert 'too few for a VQ-VAE' in lines[0] and 'a few codes used' in lines[0]
    assert 'sample' not in lines[0] and 'a VAE' not in lines[0]


def test_a_collapsed_kl_says_so_and_what_to_try_for_the_run_s_likelihood():
    fixed = dict(OPTIONS, sigma=0.1)
    line, = run_advice(history(10, active=0), steps=5000, batches=500, options=fixed)
    assert 'no latent unit is active (val_active_units 0)' in line
    assert 'a smaller --beta (this run: 1; try 0.25)' in line
    assert '--sigma calibrated or a smaller --sigma (this run: 0.1' in line
    line, = run_advice(history(10, active=0), steps=5000, batches=500, options=dict(OPTIONS, likelihood='bernoulli'))
    assert '--likelihood gaussian' in line and '--sigma' not in line
    line, = run_advice(history(10, active=0), steps=5000, batches=500, options=OPTIONS)  # calibrated already
    assert '--sigma' not in line and '--likelihood' not in line and 'more --epochs' in line
    assert '--kl-warmup 5' in line and '--free-bits 0.5' in line
    line, = run_advice(history(10, active=0), steps=5000, batches=500, options=dict(OPTIONS, kl_warmup=2.0))
    assert '--kl-warmup' not in line and '--free-bits' not in line  # a schedule already: not suggested again


def test_a_short_collapsed_run_gets_both_lines_and_a_history_without_the_metric_none():
    assert len(run_advice(history(2, active=0), steps=20, batches=10, options=OPTIONS)) == 2
    assert run_advice([{'loss': 1.0}], steps=5000, batches=5000, options=OPTIONS) == []
    assert run_advice([{'val_active_units': float('nan')}], steps=5000, batches=5000, options=OPTIONS) == []


def test_an_epoch_of_a_small_training_set_goes_over_it_as_many_times_as_fit_in_epoch_steps():
    assert EPOCH_STEPS == 100
    assert epoch_passes(4) == 25  # 450 pictures in batches of 128: 100 steps an epoch
    assert epoch_passes(29) == 3  # 3,600: 87 steps
    assert epoch_passes(71) == 1 and epoch_passes(469) == 1  # MNIST's 9,000 and 60,000 training images: as before
    assert epoch_passes(1) == 100
