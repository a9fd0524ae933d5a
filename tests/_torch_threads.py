"""A fixture shared by the model/train/evaluate tests: run torch on one thread.

Tiny models are fastest on one thread, and on a shared CPU more threads mostly wait for each
other (a 2-thread backward of a 16-dim model took 40x longer than 1 thread under load).
"""

import pytest
import torch


@pytest.fixture
def single_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
