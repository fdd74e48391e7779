"""Fixture for tests/test_linear.c: PyTorch's linear on bf16 weights upcast to fp32.

Run with Debian's python3-torch: /usr/bin/python3 tests/gen_linear_fixtures.py
Writes tests/fixtures/linear/{x,w_bits,bias,y}.npy; w_bits holds the bf16 bit patterns
(int32, one per weight), y = F.linear(x, W.float(), bias) in fp32.
"""
import os

import numpy as np
import torch

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "linear")
os.makedirs(out, exist_ok=True)
g = torch.Generator().manual_seed(7)
N, IN, OUT = 5, 905, 37
x = torch.randn(N, IN, generator=g)
w = (torch.randn(OUT, IN, generator=g) * 0.05).to(torch.bfloat16)
bias = torch.randn(OUT, generator=g) * 0.1
y = torch.nn.functional.linear(x, w.float(), bias)
bits = w.view(torch.int16).numpy().astype(np.int32) & 0xFFFF
np.save(os.path.join(out, "x.npy"), x.numpy())
np.save(os.path.join(out, "w_bits.npy"), bits)
np.save(os.path.join(out, "bias.npy"), bias.numpy())
np.save(os.path.join(out, "y.npy"), y.numpy())
print("wrote", out)
