#!/usr/bin/python3
"""Writes tests/fixtures/tiny-causal/: a tiny random causal DiT (MDLM's AR baseline, the
project's own evaluator model; config "causal": true, the byte tokenizer's 282 ids) and the
PyTorch reference of tools/ref_dit.py + tools/ref_gpt2.py's genppl scoring: causal logits of
a batch, and per-sample NLL sums / counts / unigram entropies of the gpt2-tiny samples.
Run after `make`: /usr/bin/python3 tests/gen_evaluator_fixtures.py
"""
import json
import os
import shutil
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
sys.path.insert(0, HERE)
import ref_dit as R  # noqa: E402
import ref_gpt2 as G  # noqa: E402
from gen_gpt2_fixtures import EOS, SAMPLES, TOK, tokenize  # noqa: E402

OUT = os.path.join(HERE, "fixtures", "tiny-causal")
CFG = {"model_type": "mdlm", "vocab_size": 282, "hidden_dim": 32, "n_heads": 2, "n_blocks": 2,
       "cond_dim": 16, "model_length": 32, "mask_token_id": 281, "time_conditioning": False,
       "causal": True}


def main():
    os.makedirs(os.path.join(OUT, "ref"), exist_ok=True)
    gen = torch.Generator().manual_seed(4321)
    params = R.random_params(CFG, gen, with_prefix=True)
    R.save_safetensors(os.path.join(OUT, "model.safetensors"), params, {"format": "pt"})
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(CFG, f, indent=2)
    for fn in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(TOK, fn), os.path.join(OUT, fn))
    model = R.DiT(params, CFG)

    def logits_of(ids):
        with torch.no_grad():
            return model.forward(ids, torch.zeros(ids.shape[0]), causal=True)

    ids = torch.randint(0, CFG["vocab_size"], (2, CFG["model_length"]), generator=gen)
    np.save(os.path.join(OUT, "ref", "ids.npy"), ids.numpy().astype(np.int32))
    np.save(os.path.join(OUT, "ref", "logits.npy"), logits_of(ids).numpy())
    texts = list(SAMPLES)
    texts[-1] = "a" * 33
    refs = []
    for t in texts:
        tid = tokenize(t)
        r = {"text": t, "ids": tid}
        for ctx in (32, 16):
            r[f"nll_ctx{ctx}"], r[f"count_ctx{ctx}"] = G.score(logits_of, tid, ctx, EOS)
        r["entropy"] = G.unigram_entropy(tid)
        refs.append(r)
    with open(os.path.join(OUT, "ref", "genppl.json"), "w") as f:
        json.dump({"samples": refs}, f, indent=1)
    print("wrote", OUT, [len(r["ids"]) for r in refs])


if __name__ == "__main__":
    main()
