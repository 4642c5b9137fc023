import pytest
import torch

torch.set_num_threads(1)  # the test machine has 2 cores shared by several test processes


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)
