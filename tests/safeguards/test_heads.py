"""Training heads: determinism must not leak into what runs after them."""

import numpy as np
import torch

from lockgate.safeguards.heads import fit_mlp


def test_fit_mlp_trains_single_threaded_and_restores_the_thread_count():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        rng = np.random.default_rng(0)
        X = rng.normal(size=(64, 8)).astype(np.float32)
        Y = (X[:, :3] > 0).astype(np.float32)
        w1, _b1, w2, _b2 = fit_mlp(X, Y, hidden=4, epochs=2, seed=1)
        assert w1.shape == (8, 4) and w2.shape == (4, 3)
        # stage 3's tuning runs next in `train`: it used to inherit 1 thread only when the MLP ran first
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
