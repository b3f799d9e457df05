"""Fitting the cheap heads: stage 1 (logistic regression on hashed n-grams) and stage 2 (an MLP on the
static embeddings). Deterministic: fixed seeds, single-threaded solvers and torch."""

from __future__ import annotations

import numpy as np

from .features import hash_features_many

__all__ = ["hashed_matrix", "fit_lr", "fit_mlp"]


def hashed_matrix(texts: list[str], bits: int):
    """Stage-1 features of ``texts`` as a sparse (texts x 2**bits) matrix."""
    from scipy.sparse import csr_matrix

    seg, idx, val = hash_features_many(texts, bits)
    return csr_matrix((val, (seg, idx)), shape=(len(texts), 2**bits), dtype=np.float32)


def fit_lr(X, y, C: float, sparse: bool, seed: int):
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=C, class_weight="balanced", max_iter=3000, solver="liblinear" if sparse else "lbfgs", random_state=seed)
    clf.fit(X, y)
    return clf


def fit_mlp(X: np.ndarray, Y: np.ndarray, hidden: int, epochs: int, seed: int):
    """One hidden ReLU layer, multi-label BCE with per-domain positive weighting; deterministic (1 thread)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # restored below: stage 3's tuning must not inherit this
    torch.manual_seed(seed)
    Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
    Yt = torch.from_numpy(np.ascontiguousarray(Y, dtype=np.float32))
    pw = ((1 - Yt).sum(0) / Yt.sum(0).clamp(min=1)).sqrt()
    net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], hidden), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(hidden, Y.shape[1]))
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    lossf = torch.nn.BCEWithLogitsLoss(pos_weight=pw)
    g = torch.Generator().manual_seed(seed)
    n = len(Xt)
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, 128):
            b = perm[i : i + 128]
            opt.zero_grad()
            lossf(net(Xt[b]), Yt[b]).backward()
            opt.step()
    net.eval()
    torch.set_num_threads(threads)
    l1, l2 = net[0], net[3]
    return (l1.weight.detach().numpy().T.copy(), l1.bias.detach().numpy().copy(), l2.weight.detach().numpy().T.copy(), l2.bias.detach().numpy().copy())
