#!/usr/bin/python3
"""Writes the broken model directories under tests/bad/ (one per failure class of the model
loader; the file-format classes are made by make_bad_files.py). Run with /usr/bin/python3."""
import json
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import ref_dit as R  # noqa: E402

BAD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bad")
CFG = dict(model_type="mdlm", vocab_size=11, hidden_dim=8, n_heads=2, n_blocks=2, cond_dim=4,
           model_length=16, time_conditioning=False)


def write(name, params, cfg=CFG, sm=None):
    d = os.path.join(BAD, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    if params is not None:
        R.save_safetensors(os.path.join(d, "model.safetensors"), params)
    if sm is not None:
        with open(os.path.join(d, "transparency_config.json"), "w") as f:
            json.dump(sm, f)


def main():
    gen = torch.Generator().manual_seed(0)
    good = R.random_params(CFG, gen)
    p = dict(good)
    del p["backbone.blocks.1.mlp.2.bias"]
    write("model-missing-tensor", p)
    p = dict(good)
    p["backbone.blocks.0.attn_out.weight"] = torch.zeros(8, 7)
    write("model-wrong-shape", p)
    write("model-bad-config", good, dict(CFG, n_heads=3))
    write("model-no-weights", None)
    write("model-truncated", good)
    path = os.path.join(BAD, "model-truncated", "model.safetensors")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) - 100])
    write("model-bad-json", good)
    with open(os.path.join(BAD, "model-bad-json", "config.json"), "w") as f:
        f.write('{"model_type": "mdlm", "vocab_size": 11,')
    write("model-bad-sm-config", good, sm={"transparency_alg": "mixinputs_with_topk",
                                           "transparency_scale": 1.5,
                                           "transparency_centre": -1,
                                           "transparency_steepness": 5, "mixinputs_k": 1})


if __name__ == "__main__":
    main()
