"""The release-dependent branches of ``torchbearer_vae.compat``, each taken on purpose, and the one this torch takes."""
import re

import pytest
import torch

from torchbearer_vae import compat


def test_the_torch_version_is_read_as_major_and_minor():
    assert compat.TORCH_VERSION == tuple(int(part) for part in re.match(r'(\d+)\.(\d+)', torch.__version__).groups())


@pytest.mark.parametrize('version, cpu', [((2, 3), False), ((2, 4), True), ((3, 0), True)])
def test_fused_adam_on_the_cpu_from_torch_2_4_and_on_cuda_always(monkeypatch, version, cpu):
    monkeypatch.setattr(compat, 'TORCH_VERSION', version)
    assert compat.fused_adam_supported('cpu') is cpu
    assert compat.fused_adam_supported(torch.device('cpu')) is cpu
    assert compat.fused_adam_supported('cuda:0') is True
    assert compat.fused_adam_supported('meta') is False


def test_the_adam_the_command_builds_is_fused_exactly_where_this_torch_has_the_kernel():
    from torchbearer_vae.cli.train import _adam
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = _adam([weight], lr=0.5)  # would raise on a torch without the CPU kernel if compat said yes
    assert bool(optimizer.param_groups[0]['fused']) is compat.fused_adam_supported('cpu')
    weight.sum().backward()
    optimizer.step()
    torch.testing.assert_close(weight.detach(), torch.full((3,), 0.5))  # Adam's first step moves by lr


def test_the_environment_names_what_a_bug_report_needs():
    versions = compat.environment()
    assert list(versions) == ['torchbearer_vae', 'torch', 'torchvision', 'torchbearer', 'python', 'platform']
    assert versions['torch'].split('+')[0] == torch.__version__.split('+')[0]
