#!/usr/bin/python3
"""Reference values for the bf16/f16 scalar conversions of src/formats/safetensors.c, computed by
PyTorch (Debian's python3-torch) and written as .npy into tests/fixtures/:

    conv_bf16_in.npy    float32 [N]  inputs: specials, ties, subnormals, random magnitudes
    conv_bf16_bits.npy  int32   [N]  torch's bf16 bit pattern of each input (x.to(bfloat16))
    conv_f16_bits.npy   int32   [M]  f16 bit patterns (all subnormals/specials + random)
    conv_f16_vals.npy   float32 [M]  torch's float32 value of each f16 pattern

Run from the repository root: /usr/bin/python3 tests/gen_float_fixtures.py
"""
import os

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def bf16_inputs(rng):
    bits = [
        0x00000000, 0x80000000,  # ±0
        0x7F800000, 0xFF800000,  # ±inf
        0x7FC00000, 0x7F800001, 0xFF800001, 0x7FFFFFFF,  # NaNs, incl. payload only in low bits
        0x7F7FFFFF, 0xFF7FFFFF,  # ±FLT_MAX (rounds to ±inf)
        0x7F7F7FFF, 0x7F7F8000, 0x7F7E8000,  # just below / ties near the top
        0x00000001, 0x80000001, 0x00007FFF, 0x00008000, 0x00018000, 0x007FFFFF,  # subnormals
        0x00800000,  # FLT_MIN
        0x3F800000, 0x3F808000, 0x3F818000, 0x3F80FFFF, 0x3F807FFF, 0x3F808001,  # ties / near
        0xBF808000, 0xBF818000,  # negative ties
    ]
    special = np.array(bits, dtype=np.uint32).view(np.float32)
    # random bit patterns with each low-half pattern class represented
    rb = rng.integers(0, 2**32, size=1500, dtype=np.uint64).astype(np.uint32)
    rb[:200] = (rb[:200] & 0xFFFF0000) | 0x8000  # exact ties
    rb = rb[((rb >> 23) & 0xFF) != 0xFF]  # no NaN/inf from here (covered above)
    normal = np.concatenate([
        rng.standard_normal(500).astype(np.float32),
        (rng.standard_normal(300) * 1e-3).astype(np.float32),
        (rng.standard_normal(300) * 1e4).astype(np.float32),
    ])
    return np.concatenate([special, rb.view(np.float32), normal]).astype(np.float32)


def f16_patterns(rng):
    sub = np.concatenate([np.arange(0x0000, 0x0400), np.arange(0x8000, 0x8400)])
    spec = np.concatenate([np.arange(0x7C00, 0x7C08), np.arange(0x7DFF, 0x7E02),
                           np.arange(0x7FF8, 0x8000), np.arange(0xFC00, 0xFC04),
                           np.array([0xFE00, 0xFFFF])])
    edges = np.array([0x0400, 0x0401, 0x3C00, 0x3BFF, 0x7BFF, 0xFBFF, 0x8400, 0x3555])
    rnd = rng.integers(0, 0x10000, size=3000)
    return np.concatenate([sub, spec, edges, rnd]).astype(np.int64)


def main():
    rng = np.random.default_rng(20240617)
    x = bf16_inputs(rng)
    bf = torch.from_numpy(x.copy()).to(torch.bfloat16).view(torch.int16).numpy()
    bf_bits = bf.astype(np.int32) & 0xFFFF

    p = f16_patterns(rng)
    h = torch.from_numpy(p.astype(np.uint16).view(np.int16).copy()).view(torch.float16)
    vals = h.to(torch.float32).numpy()

    os.makedirs(OUT, exist_ok=True)
    np.save(os.path.join(OUT, "conv_bf16_in.npy"), x)
    np.save(os.path.join(OUT, "conv_bf16_bits.npy"), bf_bits.astype("<i4"))
    np.save(os.path.join(OUT, "conv_f16_bits.npy"), p.astype("<i4"))
    np.save(os.path.join(OUT, "conv_f16_vals.npy"), vals.astype("<f4"))
    print("bf16: %d inputs, f16: %d patterns (torch %s)" % (len(x), len(p), torch.__version__))


if __name__ == "__main__":
    main()
