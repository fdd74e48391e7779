#!/usr/bin/python3
"""Writes tests/fixtures/gpt2-tiny/: a tiny random HF-format GPT-2 (n_embd 32, 2 layers,
2 heads, n_positions 32, the byte tokenizer's vocabulary of 282; every parameter non-zero)
and the PyTorch reference results of tools/ref_gpt2.py: logits of a batch, and per-sample
NLL sums / counts / unigram entropies of a few samples under MDLM's genppl scoring.

The model directory uses HF names with the `transformer.` prefix plus the `attn.bias` /
`attn.masked_bias` buffers HF checkpoints carry; bare/ holds the same weights with bare names.
Sample texts are tokenised with the project's own tokenizer (`build/smdlm tokenize`, which
tests/test_tokenizer.c checks against the HF library), so run `make` first.
Run: /usr/bin/python3 tests/gen_gpt2_fixtures.py
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import ref_dit  # noqa: E402  (safetensors writer)
import ref_gpt2 as G  # noqa: E402

OUT = os.path.join(HERE, "fixtures", "gpt2-tiny")
TOK = os.path.join(HERE, "fixtures", "byte-tokenizer")
SMDLM = os.environ.get("SMDLM", os.path.join(HERE, "..", "build", "smdlm"))
EOS = 280

CFG = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 282,
       "n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 32, "n_ctx": 32,
       "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new", "n_inner": None,
       "bos_token_id": EOS, "eos_token_id": EOS}

SAMPLES = [
    "the cat sat on the mat.",
    # longer than n_positions: three chunks at ctx 32
    "in the beginning there was the word, and the word was with the reader; "
    "then the writer sat on the stone and wrote it down again.",
    # EOS in the middle (counted once), a second and third EOS (not counted), text after
    "hello there<|endoftext|>in the end<|endoftext|><|endoftext|>more text",
    # EOS at position 0: the target EOS after it is the chunk's second
    "<|endoftext|><|endoftext|>at the start",
    # 33 tokens: the last chunk at ctx 32 has one token and predicts nothing
    None,
]


def tokenize(text):
    r = subprocess.run([SMDLM, "tokenize", "-m", TOK, "--allow-special", "--text", text], check=True,
                       capture_output=True, text=True)
    return [int(v) for v in r.stdout.split()]


def main():
    os.makedirs(os.path.join(OUT, "ref"), exist_ok=True)
    os.makedirs(os.path.join(OUT, "bare"), exist_ok=True)
    gen = torch.Generator().manual_seed(1234)
    p = G.random_params(CFG, gen)
    P = CFG["n_positions"]
    hf = {"transformer." + k: v for k, v in p.items()}
    for i in range(CFG["n_layer"]):
        hf[f"transformer.h.{i}.attn.bias"] = torch.tril(torch.ones(P, P)).view(1, 1, P, P)
        hf[f"transformer.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    ref_dit.save_safetensors(os.path.join(OUT, "model.safetensors"), hf, {"format": "pt"})
    ref_dit.save_safetensors(os.path.join(OUT, "bare", "model.safetensors"), p, {"format": "pt"})
    for d in (OUT, os.path.join(OUT, "bare")):
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(CFG, f, indent=2)
        for fn in ("vocab.json", "merges.txt"):
            shutil.copy(os.path.join(TOK, fn), os.path.join(d, fn))

    ids = torch.randint(0, CFG["vocab_size"], (2, P), generator=gen)
    logits = G.forward(p, CFG, ids)
    np.save(os.path.join(OUT, "ref", "ids.npy"), ids.numpy().astype(np.int32))
    np.save(os.path.join(OUT, "ref", "logits.npy"), logits.float().numpy())

    texts = list(SAMPLES)
    texts[-1] = "a" * 33  # no merges apply to runs of 'a': 33 tokens
    refs, tot_nll, tot_n, ents = [], 0.0, 0, []
    for t in texts:
        tid = tokenize(t)
        r = {"text": t, "ids": tid}
        for ctx in (32, 16):
            nll, n = G.score(lambda c: G.forward(p, CFG, c), tid, ctx, EOS)
            r[f"nll_ctx{ctx}"], r[f"count_ctx{ctx}"] = nll, n
        r["entropy"] = G.unigram_entropy(tid)
        tot_nll += r["nll_ctx32"]
        tot_n += r["count_ctx32"]
        ents.append(r["entropy"])
        refs.append(r)
    assert len(refs[-1]["ids"]) == 33 and len(refs[1]["ids"]) > 64, [len(r["ids"]) for r in refs]
    with open(os.path.join(OUT, "ref", "samples.jsonl"), "w") as f:
        for r in refs:
            f.write(json.dumps({"text": r["text"], "id": len(r["text"])}) + "\n")
    summary = {"samples": refs, "nll_sum": tot_nll, "tokens": tot_n,
               "gen_ppl": float(np.exp(tot_nll / tot_n)), "entropy": float(np.mean(ents))}
    with open(os.path.join(OUT, "ref", "genppl.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print("gen_ppl", summary["gen_ppl"], "entropy", summary["entropy"],
          "lengths", [len(r["ids"]) for r in refs])


if __name__ == "__main__":
    main()
