"""Fixtures for tests/test_transformer.c: tiny random Dream (GQA, sharded, untied head) and
LLaDA (tied, embedding_size > vocab_size) models, their PyTorch outputs (tools/ref_dream.py),
a bf16 copy of the Dream model, and broken model directories for the bad-input tests.

Run with Debian's /usr/bin/python3 from the repository root (`make fixtures`).
"""
import json
import os
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import ref_dream as R  # noqa: E402

FIX = os.path.join(os.path.dirname(__file__), "fixtures")
BAD = os.path.join(os.path.dirname(__file__), "bad")

DREAM = {
    "architectures": ["DreamModel"], "model_type": "Dream", "hidden_act": "silu",
    "vocab_size": 300, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0, "rope_scaling": None, "max_position_embeddings": 64,
    "tie_word_embeddings": False, "mask_token_id": 297, "bos_token_id": 290,
    "eos_token_id": 290, "pad_token_id": 290, "sliding_window": None,
    "use_sliding_window": False, "torch_dtype": "float32",
}
LLADA = {
    "architectures": ["LLaDAModelLM"], "model_type": "llada", "activation_type": "silu",
    "block_type": "llama", "layer_norm_type": "rms", "rope": True, "alibi": False,
    "d_model": 64, "n_heads": 4, "n_kv_heads": 4, "n_layers": 2, "mlp_hidden_size": 80,
    "mlp_ratio": 4, "vocab_size": 310, "embedding_size": 320, "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0, "max_sequence_length": 64, "include_bias": False,
    "include_qkv_bias": False, "weight_tying": True, "mask_token_id": 305,
    "multi_query_attention": None, "attention_layer_norm": False, "input_emb_norm": False,
    "scale_logits": False, "block_group_size": 1, "layer_norm_with_affine": True,
    "bias_for_layer_norm": None,
}
SM_DREAM = {"transparency_alg": "mixinputs_with_topk", "transparency_scale": 0.7,
            "transparency_centre": -4.5, "transparency_steepness": 4.0, "mixinputs_k": 1,
            "mixture_temp": 1.0, "transparency_scheduling": "none"}
SM_LLADA = dict(SM_DREAM, transparency_scale=0.6, transparency_centre=-1.5,
                transparency_steepness=3.0, mixinputs_k=2)


def save_npy(d, name, a):
    np.save(os.path.join(d, name), a)


def canvases(cfg, gen, B, T):
    """A first canvas (prompt, some masks) and a second one (some revealed, rest masked)."""
    ids = torch.randint(0, cfg.mask_id, (B, T), generator=gen)
    masked = torch.rand(B, T, generator=gen) < 0.6
    masked[:, :2] = False                    # a prompt
    masked[:, -1] = True
    x1 = torch.where(masked, torch.full_like(ids, cfg.mask_id), ids)
    reveal = masked & (torch.rand(B, T, generator=gen) < 0.4)
    x2 = torch.where(reveal, ids, x1)
    return x1, x2


def write_model(name, config, P, nshards, ids_dtype, sm, seed):
    d = os.path.join(FIX, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    R.save_sharded(d, P, nshards)
    with open(os.path.join(d, "sm_config.json"), "w") as f:
        json.dump(sm, f, indent=2)
    cfg = R.Cfg(config)
    Pf = {k: v.float() for k, v in P.items()}
    gen = torch.Generator().manual_seed(seed)
    x1, x2 = canvases(cfg, gen, 2, 12)
    with torch.no_grad():
        raw = R.forward(cfg, Pf, x1)
        raw2 = R.sm_forward(cfg, Pf, x2, raw, sm)
    save_npy(d, "ids.npy", x1.numpy().astype(ids_dtype))
    save_npy(d, "ids_sm.npy", x2.numpy().astype(ids_dtype))
    save_npy(d, "logits.npy", raw.numpy().astype(np.float32))
    save_npy(d, "logits_shifted.npy", R.shift_logits(raw).numpy().astype(np.float32))
    save_npy(d, "logits_sm.npy", raw2.numpy().astype(np.float32))
    if name == "tiny-dream":  # q8 reference (bf16 weights hit rounding ties)
        with torch.no_grad():
            rawq = R.forward(cfg, R.q8_params(cfg, Pf), x1, linear=R.q8_linear)
        save_npy(d, "logits_q8.npy", rawq.numpy().astype(np.float32))
    return d, cfg


# ---- broken model directories (one per failure class) ------------------------------------

def bad_copy(src, name):
    d = os.path.join(BAD, name)
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(src, d, ignore=shutil.ignore_patterns("*.npy", "sm_config.json"))
    return d


def bad_config(src, name, **changes):
    """Only config.json: the config is rejected before any weight is read."""
    d = os.path.join(BAD, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    shutil.copy(os.path.join(src, "config.json"), d)
    edit_json(os.path.join(d, "config.json"), lambda j: j.update(changes))


def edit_json(path, fn):
    with open(path) as f:
        j = json.load(f)
    fn(j)
    with open(path, "w") as f:
        json.dump(j, f, indent=2)


def write_bad(dream_dir, llada_dir):
    # a shard named in the index is missing
    d = bad_copy(dream_dir, "dream-shard-missing")
    os.remove(os.path.join(d, "model-00002-of-00002.safetensors"))
    # a tensor listed twice in the index (two shards claim it)
    d = bad_copy(dream_dir, "dream-shard-listed-twice")
    with open(os.path.join(d, "model.safetensors.index.json")) as f:
        text = f.read()
    text = text.replace('"weight_map": {', '"weight_map": {\n    "model.norm.weight": '
                        '"model-00001-of-00002.safetensors",', 1)
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        f.write(text)
    # a shard whose tensor disagrees with config.json (shape)
    d = bad_copy(dream_dir, "dream-wrong-shape")
    edit_json(os.path.join(d, "config.json"), lambda j: j.update(intermediate_size=80))
    # a missing tensor
    d = bad_copy(dream_dir, "dream-missing-tensor")
    cfg, P = R.load_dir(d)
    del P["model.layers.1.self_attn.k_proj.bias"]
    R.save_sharded(d, P, 2)
    # unknown model_type, config values out of range
    bad_config(dream_dir, "dream-unknown-type", model_type="qwen2")
    bad_config(dream_dir, "dream-bad-heads", num_key_value_heads=3)
    bad_config(dream_dir, "dream-mask-ge-vocab", mask_token_id=300)
    bad_config(dream_dir, "dream-rope-scaling", rope_scaling={"type": "yarn", "factor": 4.0})
    bad_config(llada_dir, "llada-bad-block", block_type="sequential")
    bad_config(llada_dir, "llada-negative-layers", n_layers=-2)
    # ids at/after the vocabulary, canvas longer than the context
    np.save(os.path.join(BAD, "dream_ids_ge_vocab.npy"), np.array([[1, 2, 300]], np.int32))
    np.save(os.path.join(BAD, "dream_ids_too_long.npy"), np.zeros((1, 65), np.int32))


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    cfg = R.Cfg(DREAM)
    P = R.random_params(cfg, gen)
    dream_dir, _ = write_model("tiny-dream", DREAM, P, 2, np.int64, SM_DREAM, 7)
    # the same model with bf16 weights (the reference computes in fp32 on the rounded values)
    Pb = {k: v.to(torch.bfloat16) for k, v in P.items()}
    write_model("tiny-dream-bf16", dict(DREAM, torch_dtype="bfloat16"), Pb, 1, np.int32,
                SM_DREAM, 7)
    cfg_l = R.Cfg(LLADA)
    Pl = R.random_params(cfg_l, torch.Generator().manual_seed(99))
    llada_dir, _ = write_model("tiny-llada", LLADA, Pl, 1, np.int32, SM_LLADA, 8)
    write_bad(dream_dir, llada_dir)
    print("wrote tiny-dream, tiny-dream-bf16, tiny-llada and bad Dream/LLaDA models")


if __name__ == "__main__":
    main()
