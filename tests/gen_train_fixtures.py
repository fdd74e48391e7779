#!/usr/bin/python3
"""Reference state of the training math (run: make fixtures; Debian python3-torch).

For the tiny fixture models (tests/fixtures/tiny, tiny-tc) and one fixed batch (x0, t, mask
pattern) it writes, with PyTorch autograd over tools/ref_dit.py:
  - the NELBO loss and the gradient of every parameter for a plain pass,
  - the same for a two-pass soft-masking step (pass 1 detached, gradients to the three raw
    soft-masking scalars through λ only),
  - the causal (next-token) loss and gradients,
  - the losses of 10 AdamW steps on that batch, plain and two-pass.
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import ref_dit as R  # noqa: E402

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
SM_INIT = dict(scale=0.6, centre=-1.5, steepness=3.0, k=3)
ADAM = dict(lr=1e-3, sm_lr=1e-2, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-8, clip=1.0)


class Trainer:
    def __init__(self, model_dir):
        self.cfg = json.load(open(os.path.join(model_dir, "config.json")))
        params = R.load_safetensors(os.path.join(model_dir, "model.safetensors"))
        self.names = list(params)
        self.params = {k: v.float().clone().requires_grad_(True) for k, v in params.items()}
        raw = R.sm_raw_from_values(SM_INIT["scale"], SM_INIT["centre"], SM_INIT["steepness"])
        self.raw = [r.clone().requires_grad_(True) for r in raw]
        self.mask = self.cfg["mask_token_id"]

    def model(self):
        return R.DiT(self.params, self.cfg)  # DiT keeps references: gradients flow

    def loss(self, xt, x0, t, sm=False, causal=False):
        m = self.model()
        sigma = R.sigma_of_t(t)
        if causal:  # the AR baseline has no diffusion time: σ = 0
            return R.causal_loss(m.forward(x0, torch.zeros_like(sigma), causal=True), x0)
        if not sm:
            return R.nelbo(m.forward(xt, sigma), xt, x0, t, self.mask)
        return R.sm_two_pass_loss(m, xt, x0, t, self.mask, self.raw, SM_INIT["k"])

    def grads(self, loss):
        for p in list(self.params.values()) + self.raw:
            p.grad = None
        loss.backward()
        out = {k: self.params[k].grad.detach().clone() for k in self.names}
        for name, r in zip(("raw_scale", "raw_centre", "raw_steepness"), self.raw):
            out["softmask." + name] = (r.grad if r.grad is not None else torch.zeros(())).reshape(1)
        return out


def adam_losses(model_dir, xt, x0, t, sm, steps=10):
    tr = Trainer(model_dir)
    groups = [{"params": [tr.params[k] for k in tr.names], "lr": ADAM["lr"],
               "weight_decay": ADAM["weight_decay"]}]
    if sm:
        groups.append({"params": tr.raw, "lr": ADAM["sm_lr"], "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, betas=ADAM["betas"], eps=ADAM["eps"], foreach=False)
    losses, norms = [], []
    for _ in range(steps):
        opt.zero_grad()
        loss = tr.loss(xt, x0, t, sm=sm)
        loss.backward()
        everything = [p for g in groups for p in g["params"]]
        norms.append(float(torch.nn.utils.clip_grad_norm_(everything, ADAM["clip"])))
        opt.step()
        losses.append(float(loss))
    return np.array(losses, dtype=np.float32), np.array(norms, dtype=np.float32)


def main():
    torch.manual_seed(0)
    for name in ("tiny", "tiny-tc"):
        d = os.path.join(FIX, name)
        out = os.path.join(d, "train")
        os.makedirs(out, exist_ok=True)
        cfg = json.load(open(os.path.join(d, "config.json")))
        V, mask = cfg["vocab_size"], cfg["mask_token_id"]
        gen = torch.Generator().manual_seed(7)
        B, L = 2, 24
        x0 = torch.randint(0, V - 1, (B, L), generator=gen)
        t = torch.tensor([0.35, 0.8])
        masked = torch.rand(B, L, generator=gen) < (1 - 1e-3) * t[:, None]
        xt = torch.where(masked, torch.full_like(x0, mask), x0)
        np.save(os.path.join(out, "x0.npy"), x0.numpy().astype(np.int32))
        np.save(os.path.join(out, "xt.npy"), xt.numpy().astype(np.int32))
        np.save(os.path.join(out, "t.npy"), t.numpy().astype(np.float32))
        summary = {"sm_init": SM_INIT, "adam": ADAM}
        for kind in ("plain", "sm", "causal"):
            tr = Trainer(d)
            loss = tr.loss(xt, x0, t, sm=kind == "sm", causal=kind == "causal")
            g = tr.grads(loss)
            R.save_safetensors(os.path.join(out, f"grads_{kind}.safetensors"), g)
            summary[f"loss_{kind}"] = float(loss)
        for kind in ("plain", "sm"):
            losses, norms = adam_losses(d, xt, x0, t, sm=kind == "sm")
            np.save(os.path.join(out, f"adam_losses_{kind}.npy"), losses)
            np.save(os.path.join(out, f"adam_norms_{kind}.npy"), norms)
            summary[f"adam_losses_{kind}"] = [float(v) for v in losses]
        with open(os.path.join(out, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
        print(name, {k: v for k, v in summary.items() if k.startswith("loss")})


if __name__ == "__main__":
    main()
