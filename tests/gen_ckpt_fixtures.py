"""Fixtures for tests/test_ckpt.c: PyTorch Lightning-style checkpoints of the tiny MDLM
(tests/fixtures/tiny) written with torch.save as the reference's training code saves them
(kuleshov-group/mdlm, IBM language/trainer_base.py: Lightning's top-level dict with `state_dict`
under `backbone.` and `tran_head.`, the rotary buffer, optimizer and scheduler states, and
`ema` = ExponentialMovingAverage.state_dict() whose shadow_params follow the backbone's
parameters), the weights and transparency values a conversion must give, and pickles that
reference other globals, which must be refused.

Run with Debian's /usr/bin/python3 from the repository root (`make fixtures`).
"""
import collections
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import ref_dit  # noqa: E402

FIX = os.path.join(os.path.dirname(__file__), "fixtures")
OUT = os.path.join(FIX, "ckpt")


class Evil:
    """Pickles as a call of an arbitrary global (what a malicious checkpoint does)."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def lightning_checkpoint(sd, ema_params, extra=None):
    params = [k for k in sd if k.startswith("backbone.") and not k.endswith("inv_freq")]
    ck = {
        "epoch": 3, "global_step": 1000, "pytorch-lightning_version": "2.2.1",
        "state_dict": sd,
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {
            "total": {"ready": 4, "completed": 3}, "current": {"ready": 4, "completed": 3}},
            "epoch_loop.batch_progress": {"total": {"completed": 1000}, "is_last_batch": False}}},
        "callbacks": {"ModelCheckpoint{'monitor': 'val/nll', 'mode': 'min'}": {
            "monitor": "val/nll", "best_model_score": torch.tensor(3.25),
            "best_model_path": "/ckpt/best.ckpt", "dirpath": "/ckpt", "best_k_models": {}}},
        "optimizer_states": [{
            "state": {i: {"step": torch.tensor(1000.0), "exp_avg": torch.zeros_like(sd[k]),
                          "exp_avg_sq": torch.ones_like(sd[k])} for i, k in enumerate(params)},
            "param_groups": [{"lr": 3e-4, "betas": (0.9, 0.999), "eps": 1e-8,
                              "weight_decay": 0.0, "amsgrad": False, "foreach": None,
                              "maximize": False, "capturable": False, "differentiable": False,
                              "fused": None, "params": list(range(len(params)))}]}],
        "lr_schedulers": [{"base_lrs": [3e-4], "last_epoch": 1000, "_step_count": 1001,
                           "verbose": False, "_get_lr_called_within_step": False,
                           "_last_lr": [3e-4], "lr_lambdas": [None]}],
        "ema": {"decay": 0.9999, "num_updates": 1000, "shadow_params": ema_params,
                "collected_params": None},
        "sampler": {"random_state": torch.get_rng_state()},
    }
    ck.update(extra or {})
    return ck


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(5)
    base = ref_dit.load_safetensors(os.path.join(FIX, "tiny", "model.safetensors"))
    sd = collections.OrderedDict()
    for k, v in base.items():
        sd[k] = v.float().clone()
        if k == "backbone.sigma_map.mlp.2.bias":  # the rotary buffer follows sigma_map
            sd["backbone.rotary_emb.inv_freq"] = 1.0 / (10000 ** (torch.arange(0, 16, 2).float() / 16))
    # the soft-masking head (IBM TransparencyHead) after the backbone
    raw = {"raw_scale": 0.4, "raw_centre_neg": 0.3, "raw_steep": 1.7, "raw_temperature": 0.2}
    for k, v in raw.items():
        sd["tran_head." + k] = torch.tensor(v)
    sd._metadata = collections.OrderedDict([("", {"version": 1})])  # as state_dict() sets it
    params = [k for k in sd if k.startswith("backbone.") and not k.endswith("inv_freq")]
    ema = []
    for i, k in enumerate(params):
        e = sd[k] + 0.01 * torch.randn(sd[k].shape)
        if i == 3 and e.dim() == 2:  # a view with an offset and strides into a larger storage
            big = torch.randn(e.shape[0] + 1, e.shape[1] + 3)
            big[1:, 2:2 + e.shape[1]] = e
            e = big[1:, 2:2 + e.shape[1]]
            assert not e.is_contiguous()
        ema.append(e)
    torch.save(lightning_checkpoint(sd, ema), os.path.join(OUT, "lightning.ckpt"))
    # what the conversion must write
    ref_dit.save_safetensors(os.path.join(OUT, "expected_ema.safetensors"),
                             {k: e.contiguous() for k, e in zip(params, ema)})
    ref_dit.save_safetensors(os.path.join(OUT, "expected_raw.safetensors"),
                             {k: sd[k] for k in params})
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731
    with open(os.path.join(OUT, "expected_sm.json"), "w") as f:
        json.dump({"transparency_scale": sig(raw["raw_scale"]),
                   "transparency_centre": -sp(raw["raw_centre_neg"]) - 1e-6,
                   "transparency_steepness": sp(raw["raw_steep"]) + 1e-6,
                   "mixture_temp": sp(raw["raw_temperature"]) + 1e-6}, f, indent=2)
    # a bare state dict (torch.save(model.state_dict()))
    plain = collections.OrderedDict((k, v) for k, v in sd.items() if k.startswith("backbone."))
    torch.save(plain, os.path.join(OUT, "state_dict.pt"))
    # refused: other globals anywhere in the file, the legacy format
    import os as os_module
    evil = {"system": Evil(os_module.system, ("echo owned > /tmp/smdlm-owned",)),
            "eval": Evil(eval, ("__import__('os').system('echo owned')",)),
            "getattr": Evil(getattr, ("", "join"))}
    for name, obj in evil.items():
        torch.save(lightning_checkpoint(sd, ema, {"hyper_parameters": obj}),
                   os.path.join(OUT, f"evil_{name}.ckpt"))
    torch.save(plain, os.path.join(OUT, "legacy.pt"), _use_new_zipfile_serialization=False)
    print("wrote tests/fixtures/ckpt")


if __name__ == "__main__":
    main()
