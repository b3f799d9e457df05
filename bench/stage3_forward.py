"""Where stage 3's time goes: one forward of the tuned MiniLM by segment length (prints a table; not a test).

    python bench/stage3_forward.py [--tokens 1,37,73,128] [--repeat 30]

For each length, the p50 of one forward (batch 1, one torch thread, as the gateway runs it) in float32, in
dynamic int8 (``lockgate safety train --int8``), and under bfloat16 autocast (not a shipped option; shown
as a what-if, meaningful only on CPUs with AVX512-BF16 or AMX); and the p50 of the 36 matrix products of
the six layers alone at that length in float32 (random matrices of the model's shapes), the floor for float32
however the rest is written.
A stage-3 segment is a 64-word window, ~70-90 tokens.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _p50(fn, repeat: int) -> float:
    for _ in range(3):
        fn()
    lat = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        lat.append((time.perf_counter() - t) * 1000)
    return statistics.median(lat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", default="1,37,73,128")
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    import torch

    from lockgate.safeguards import Classifier
    from lockgate.safeguards.embed import get_minilm
    from lockgate.safeguards.finetune import Stage3

    clf = Classifier.load(memo=0)
    minilm = get_minilm()
    torch.set_num_threads(1)
    fp32, int8 = Stage3(minilm, clf._tuned), Stage3(minilm, clf._tuned, int8=True)
    cfg = minilm.model.config
    h, inter, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    print(f"torch {torch.__version__}, 1 thread, cpu capability {torch.backends.cpu.get_cpu_capability()}, "
          f"repeat {args.repeat}")
    hdr = f"{'tokens':>7}{'float32 ms':>12}{'int8 ms':>10}{'bf16 ms':>10}{'matmuls only (fp32) ms':>24}"
    print(hdr)
    print("-" * len(hdr))
    for n in (int(x) for x in args.tokens.split(",")):
        ids = torch.randint(1000, 20000, (1, n))
        mask = torch.ones_like(ids)

        def run(model):
            return lambda: model(input_ids=ids, attention_mask=mask)

        def bf16():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                fp32.model(input_ids=ids, attention_mask=mask)

        x = torch.randn(n, h)
        # distinct matrices per layer, as in the model: ~42 MB of float32 weights to stream from memory
        ws = [([torch.randn(h, h) for _ in range(4)], torch.randn(h, inter), torch.randn(inter, h)) for _ in range(layers)]

        def matmuls():
            for attn, w1, w2 in ws:
                for w in attn:  # query, key, value, attention output
                    x @ w
                (x @ w1) @ w2  # feed-forward

        with torch.inference_mode():
            row = [_p50(run(fp32.model), args.repeat), _p50(run(int8.model), args.repeat), _p50(bf16, args.repeat),
                   _p50(matmuls, args.repeat)]
        print(f"{n:>7}{row[0]:>12.1f}{row[1]:>10.1f}{row[2]:>10.1f}{row[3]:>24.1f}")


if __name__ == "__main__":
    main()
