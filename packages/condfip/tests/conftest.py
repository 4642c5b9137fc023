import os

import pytest
import torch

# One thread unless the run asks otherwise (the development machine's 2 cores are shared); OMP_NUM_THREADS=2
# runs the float comparisons with the other reduction orders of two threads.
if "OMP_NUM_THREADS" not in os.environ:
    torch.set_num_threads(1)


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)
