#!/usr/bin/python3
"""Fixtures for tests/test_generate_dream.c (`smdlm generate` and smdlm_generate on Dream and LLaDA):

- tests/fixtures/tiny-dream-tokenizer/ and tiny-llada-tokenizer/: byte-level BPE tokenizers
  (Qwen2-style tokenizer.json + tokenizer_config.json with the real chat templates' control
  tokens) whose ids cover exactly the tiny models' output width (Dream 300, LLaDA 320), so
  that every id the models can produce decodes. The test assembles a model directory from
  tests/fixtures/tiny-dream (or tiny-llada) and one of these at run time.
- tests/fixtures/generate/cases.json: decoder runs at temperature 0 of the tiny Dream and
  LLaDA models (tools/ref_dream.py forward, tools/ref_decoder.py decoder), with and without
  soft-masking; a case whose smallest decision margin is below MIN_MARGIN moves to the next
  seed (another prompt), so that float32 differences cannot flip an argmax.

Run with Debian's /usr/bin/python3 (python3-torch) after tests/gen_dream_fixtures.py.
"""
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import ref_decoder as D  # noqa: E402
import ref_dream as RD  # noqa: E402

FIX = os.path.join(HERE, "fixtures")
MIN_MARGIN = 2e-5

SPLIT = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
         "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
# merges in rank order; each joins two tokens that exist before it
MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a"), ("e", "r"), ("o", "n"),
          ("Ġ", "s"), ("r", "e"), ("a", "n"), ("a", "t"), ("e", "n"), ("n", "d"), ("Ġ", "w"),
          ("Ġ", "o"), ("i", "s"), ("o", "r"), ("Ġ", "b"), ("Ġ", "c"), ("e", "d"), ("Ġ", "f"),
          ("Ġ", "in"), ("i", "t"), ("e", "s"), ("o", "u"), ("Ġ", "p"), ("a", "l"), ("Ġ", "m"),
          ("a", "r"), ("Ġ", "h"), ("Ġ", "d"), ("Ġ", "l"), ("in", "g"), ("Ġa", "nd"),
          ("l", "l"), ("Ġ", "he"), ("Ġ", "g"), ("Ġo", "f"), ("l", "e"), ("Ġt", "o"),
          ("Ġ", "is"), ("Ġ", "n"), ("o", "m"), ("Ġ", "e")]


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def write_tokenizer(name, n_ids, specials, config):
    """Byte alphabet at ids 0..255, merges from 256, the named special tokens at their ids and
    reserved special tokens on every id left, up to n_ids."""
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    merges = []
    for a, b in MERGES:
        if len(vocab) + 0 >= min(specials.values()):
            break
        assert a in vocab and b in vocab and a + b not in vocab
        vocab[a + b] = len(vocab)
        merges.append([a, b])
    by_id = {i: s for s, i in specials.items()}
    k = 0
    for i in range(len(vocab), n_ids):
        if i not in by_id:
            by_id[i] = f"<|reserved_{k}|>"
            k += 1
    added = []
    for i in sorted(by_id):
        vocab[by_id[i]] = i
        added.append(dict(id=i, content=by_id[i], single_word=False, lstrip=False, rstrip=False,
                          normalized=False, special=True))
    assert sorted(vocab.values()) == list(range(n_ids))
    tok = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": SPLIT}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
             "use_regex": False}]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                    "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }
    d = os.path.join(FIX, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "tokenizer.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False, separators=(",", ":"))
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2)


CHATML = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
          "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
          "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
LLADA_CHAT = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
              "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] "
              "| trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
              "{% endif %}{{ content }}{% endfor %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}")


def tokenizers():
    write_tokenizer("tiny-dream-tokenizer", 300,
                    {"<|endoftext|>": 290, "<|im_start|>": 291, "<|im_end|>": 292, "<|mask|>": 297},
                    {"bos_token": None, "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                     "mask_token": "<|mask|>", "chat_template": CHATML})
    write_tokenizer("tiny-llada-tokenizer", 320,
                    {"<|startoftext|>": 300, "<|endoftext|>": 301, "<|start_header_id|>": 302,
                     "<|end_header_id|>": 303, "<|eot_id|>": 304, "<|mdm_mask|>": 305},
                    {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
                     "pad_token": "<|endoftext|>", "chat_template": LLADA_CHAT})


def model_forward(cfg, P):
    """ref_decoder's model interface: soft = (indices, weights) mixes embedding rows; a full
    forward keeps every layer's keys/values, a window (lo, hi) computes its rows against them."""
    E = P[RD.embed_name(cfg)]
    kv = []

    def f(x, soft, window=None):
        emb = E[x] if soft is None else (E[soft[0]] * soft[1].unsqueeze(-1)).sum(dim=2)
        if window is None:
            kv.clear()
            return RD.forward(cfg, P, inputs_embeds=emb, kv=kv)
        out = torch.zeros(x.shape[0], x.shape[1], P[RD.head_name(cfg)].shape[0])
        out[:, window[0]:window[1]] = RD.forward(cfg, P, inputs_embeds=emb, kv=kv, window=window)
        return out
    return f


def sm_of(path):
    j = json.load(open(path))
    return dict(scale=j["transparency_scale"], centre=j["transparency_centre"],
                steepness=j["transparency_steepness"], k=j["mixinputs_k"],
                schedule=j.get("transparency_scheduling", "none"))


def write_scheduled_configs():
    """sm_config_linear.json, sm_config_stepwise.json beside each model's sm_config.json."""
    for model in ("tiny-dream", "tiny-llada"):
        d = os.path.join(FIX, model)
        j = json.load(open(os.path.join(d, "sm_config.json")))
        for schedule in ("linear", "stepwise"):
            with open(os.path.join(d, f"sm_config_{schedule}.json"), "w") as f:
                json.dump(dict(j, transparency_scheduling=schedule), f, indent=2)


def cases():
    """sm: the soft-masking config file of the model directory, or None."""
    out = []
    for model in ("tiny-dream", "tiny-llada"):
        for sm in (None, "sm_config.json"):
            if model == "tiny-dream":
                out.append(dict(model=model, style="dream", alg="entropy", steps=8, sm=sm))
                out.append(dict(model=model, style="dream", alg="maskgit_plus", steps=5, sm=sm))
            else:
                out.append(dict(model=model, style="llada", steps=8, block_length=8, sm=sm))
    # the λ schedules (appended: the cases above keep their seeds)
    out.append(dict(model="tiny-dream", style="dream", alg="entropy", steps=8,
                    sm="sm_config_linear.json"))
    out.append(dict(model="tiny-dream", style="dream", alg="entropy", steps=8,
                    sm="sm_config_stepwise.json"))
    out.append(dict(model="tiny-llada", style="llada", steps=8, block_length=8,
                    sm="sm_config_linear.json"))
    # LLaDA generate.py's options: guidance; the EOS id is the token the run generates most
    # without the options, the EoT id the one it generates most with EOS off (so that each
    # option changes the outcome)
    out.append(dict(model="tiny-llada", style="llada", steps=8, block_length=8, sm=None,
                    cfg_scale=1.5))
    out.append(dict(model="tiny-llada", style="llada", steps=8, block_length=8, sm=None,
                    eos_options=True))
    # Fast-dLLM's block-wise Dream, without and with its prefix and dual caches (the cached
    # rows those of the canvas at the block's refresh), and LLaDA's caches
    for cache in (None, "prefix", "dual"):
        for sm in (None, "sm_config.json"):
            out.append(dict(model="tiny-dream", style="dream", alg="entropy", steps=8,
                            block_length=4, sm=sm, cache=cache))
    out.append(dict(model="tiny-dream", style="dream", alg="maskgit_plus", steps=8,
                    block_length=8, sm=None, threshold=0.05, cache="dual"))
    out.append(dict(model="tiny-dream", style="dream", alg="topk_margin", steps=12,
                    block_length=4, sm="sm_config.json", cache="dual", cache_refresh=2))
    out.append(dict(model="tiny-dream", style="dream", alg="entropy", steps=8, sm=None,
                    cache="prefix"))
    out.append(dict(model="tiny-llada", style="llada", steps=8, block_length=4, sm=None,
                    cache="dual"))
    out.append(dict(model="tiny-llada", style="llada", steps=8, block_length=8,
                    sm="sm_config.json", cache="prefix"))
    return out


def most_generated(fwd, cfg, prompt, G, kw):
    with torch.no_grad():
        x = D.decode(fwd, cfg.V, cfg.mask_id, int(cfg.shift), prompt, G, **kw)[0]
    ids, counts = np.unique(x[0, prompt.shape[1]:], return_counts=True)
    return int(ids[np.argsort(-counts, kind="stable")[0]])


def main():
    tokenizers()
    write_scheduled_configs()
    out_dir = os.path.join(FIX, "generate")
    os.makedirs(out_dir, exist_ok=True)
    B, P, G = 1, 5, 16
    lines = []
    for ci, c in enumerate(cases()):
        d = os.path.join(FIX, c["model"])
        cfg, params = RD.load_dir(d)
        fwd = model_forward(cfg, params)
        sm = sm_of(os.path.join(d, c["sm"])) if c["sm"] else None
        for seed in range(200 + 10 * ci, 210 + 10 * ci):
            prompt = np.random.default_rng(seed).integers(0, 256, size=(B, P))
            kw = dict(style=c["style"], steps=c["steps"], alg=c.get("alg", "origin"),
                      block_length=c.get("block_length", 0), seed=seed, sm=sm)
            for opt in ("cfg_scale", "threshold", "cache", "cache_refresh"):
                if c.get(opt):
                    kw[opt] = c[opt]
            if c.get("eos_options"):
                kw["logits_inf_id"] = most_generated(fwd, cfg, prompt, G, kw)
                kw["conf_inf_id"] = most_generated(fwd, cfg, prompt, G, kw)
            with torch.no_grad():
                x, gens, forwards, steps, margin = D.decode(fwd, cfg.V, cfg.mask_id, int(cfg.shift),
                                                            prompt, G, **kw)
            if margin >= MIN_MARGIN:
                break
        else:
            raise SystemExit(f"case {ci}: no seed with margin ≥ {MIN_MARGIN}")
        kw.update(model=c["model"], prompt=prompt[0].tolist(), gen_len=G, margin=margin,
                  forwards=forwards, steps_run=steps, out=x[0, P:].tolist(),
                  sm_config=c["sm"])
        del kw["sm"]
        lines.append(kw)
        print(f"case {ci} {c['model']:10s} {kw['alg'] if c['style'] == 'dream' else 'llada':12s} "
              f"sm {'on ' if c['sm'] else 'off'} seed {seed}: forwards {forwards} margin {margin:.2e}")
    with open(os.path.join(out_dir, "cases.json"), "w") as f:
        json.dump(dict(version=1, temperature=0.0, cases=lines), f, indent=1)


if __name__ == "__main__":
    main()
