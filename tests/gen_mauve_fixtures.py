#!/usr/bin/python3
"""Writes tests/fixtures/mauve/: reference values for src/eval/mauve.c, computed with numpy/scipy.

- curve_*.npy: fixed histogram pairs, their divergence curves, MAUVE and frontier integral
  exactly as krishnap25/mauve compute_mauve.py computes them (kl_multinomial,
  get_divergence_curve_for_multinomials with linspace(1e-6, 1-1e-6, 25) and c = 5, the area
  as sklearn.metrics.auc = numpy trapezoids over np.argsort order, get_fronter_integral);
- pca_*.npy: a small matrix, its explained-variance ratios and the projection on the
  components that explain >= 0.9 of the variance (numpy SVD of the centred data, as
  sklearn's PCA; signs are free);
- kmeans_*.npy: a fixed dataset (Gaussian blobs), the median objective of the reference's
  procedure (best of 5 restarts from random points, scipy's kmeans2) and the best objective
  kmeans2 reaches in 200 k-means++ restarts;
- gpt2_*.npy: final hidden states (after ln_f) at the last token of a few texts under
  tests/fixtures/gpt2-tiny, with tools/ref_gpt2.py (texts tokenised by `build/smdlm
  tokenize`, so run `make` first) and the same for the causal DiT of tests/fixtures/tiny-causal
  with tools/ref_dit.py (the input of its output linear).
Run: /usr/bin/python3 tests/gen_mauve_fixtures.py  (Debian python3-numpy, python3-scipy,
python3-torch)
"""
import json
import os
import warnings
import subprocess
import sys

import numpy as np
from scipy.cluster.vq import kmeans2

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "mauve")
SMDLM = os.environ.get("SMDLM", os.path.join(HERE, "..", "build", "smdlm"))


# ---- the reference's divergence curve and area (krishnap25/mauve compute_mauve.py) ----------

def kl_multinomial(p, q):
    if np.logical_and(p != 0, q == 0).any():
        return np.inf
    idxs = np.logical_and(p != 0, q != 0)
    return np.sum(p[idxs] * np.log(p[idxs] / q[idxs]))


def divergence_curve(p, q, mixture_weights, scaling_factor):
    curve = [[0, np.inf]]
    for w in np.sort(mixture_weights):
        r = w * p + (1 - w) * q
        curve.append([kl_multinomial(q, r), kl_multinomial(p, r)])
    curve.append([np.inf, 0])
    return np.exp(-scaling_factor * np.asarray(curve))


def auc(x, y):
    """sklearn.metrics.auc for increasing x: numpy trapezoids."""
    assert np.all(np.diff(x) >= 0)
    return float(np.trapz(y, x))


def mauve_area(curve):
    x, y = curve.T
    i1, i2 = np.argsort(x), np.argsort(y)
    return 0.5 * (auc(x[i1], y[i1]) + auc(y[i2], x[i2]))


def frontier_integral(p, q, scaling_factor=2):
    total = 0.0
    for p1, q1 in zip(p, q):
        if p1 == 0 and q1 == 0:
            pass
        elif p1 == 0:
            total += q1 / 4
        elif q1 == 0:
            total += p1 / 4
        elif abs(p1 - q1) > 1e-8:
            total += 0.25 * (p1 + q1) - 0.5 * p1 * q1 * (np.log(p1) - np.log(q1)) / (p1 - q1)
    return total * scaling_factor


def histogram_pairs(rng, k):
    pairs = []
    for zeros in (0, 3, 8):  # some empty bins, in p only, q only and both
        cp = rng.integers(1, 50, k).astype(np.float64)
        cq = rng.integers(1, 50, k).astype(np.float64)
        cp[rng.choice(k, zeros, replace=False)] = 0
        cq[rng.choice(k, zeros, replace=False)] = 0
        pairs.append((cp / cp.sum(), cq / cq.sum()))
    cp = rng.integers(1, 50, k).astype(np.float64)  # close: q a perturbation of p
    cq = cp + rng.integers(0, 3, k)
    pairs.append((cp / cp.sum(), cq / cq.sum()))
    p = np.zeros(k)  # disjoint supports
    q = np.zeros(k)
    p[: k // 2] = 1.0 / (k // 2)
    q[k // 2:] = 1.0 / (k - k // 2)
    pairs.append((p, q))
    pairs.append((pairs[0][0], pairs[0][0]))  # identical: every middle point is (1, 1)
    # the C side reads float32: compute the reference from the float32-rounded histograms
    return [(a.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64))
            for a, b in pairs]


def write_curves(rng):
    k, m, c = 16, 25, 5.0
    weights = np.linspace(1e-6, 1 - 1e-6, m)
    pairs = histogram_pairs(rng, k)
    P = np.stack([a for a, _ in pairs])
    Q = np.stack([b for _, b in pairs])
    curves = np.stack([divergence_curve(a, b, weights, c) for a, b in pairs])
    mauve = np.array([mauve_area(cv) for cv in curves])
    fi = np.array([frontier_integral(a, b) for a, b in pairs])
    for name, a in (("p", P), ("q", Q), ("points", curves), ("mauve", mauve), ("fi", fi)):
        np.save(os.path.join(OUT, f"curve_{name}.npy"), a.astype(np.float32))
    print("mauve of the pairs", mauve, "frontier integrals", fi)


# ---- PCA (sklearn PCA = SVD of the centred data) ---------------------------------------------

def write_pca(rng):
    n, d = 60, 12
    basis, _ = np.linalg.qr(rng.standard_normal((d, d)))
    scales = 1.4 ** -np.arange(d)  # well separated spectrum
    x = (rng.standard_normal((n, d)) * scales) @ basis.T + rng.standard_normal(d)
    x = x.astype(np.float32)
    xc = x.astype(np.float64) - x.astype(np.float64).mean(0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    ratio = s ** 2 / np.sum(s ** 2)
    k = int(np.argmax(np.cumsum(ratio) >= 0.9)) + 1
    proj = xc @ vt[:k].T
    np.save(os.path.join(OUT, "pca_x.npy"), x)
    np.save(os.path.join(OUT, "pca_ratio.npy"), ratio.astype(np.float32))
    np.save(os.path.join(OUT, "pca_proj.npy"), proj.astype(np.float32))
    print("PCA keeps", k, "of", d, "ratios", ratio[:k + 1])


# ---- k-means objective ------------------------------------------------------------------------

def write_kmeans(rng):
    n, d, k = 400, 6, 8
    centres = rng.standard_normal((k, d)) * 3.0
    x = centres[rng.integers(0, k, n)] + rng.standard_normal((n, d))
    x = x.astype(np.float32)
    x64 = x.astype(np.float64)

    def objective(cent, lab):
        return float(np.sum((x64 - cent[lab]) ** 2))

    # what the reference procedure reaches: faiss starts from k random points and keeps the
    # best of nredo = 5 restarts; the median of that over 60 repetitions is the bar
    best5 = [min(objective(*kmeans2(x64, k, minit="points", iter=500, seed=1000 + 5 * rep + r))
                 for r in range(5)) for rep in range(60)]
    # and the best objective seen at all (k-means++ starts, 200 restarts), for information
    best = min(objective(*kmeans2(x64, k, minit="++", iter=300, seed=s)) for s in range(200))
    np.save(os.path.join(OUT, "kmeans_x.npy"), x)
    np.save(os.path.join(OUT, "kmeans_obj.npy"), np.array([np.median(best5), best], dtype=np.float32))
    print("k-means: median best-of-5 objective", np.median(best5), "best of 200", best)


# ---- featurizers ------------------------------------------------------------------------------

TEXTS = [
    "the cat sat on the mat.",
    "in the beginning there was the word, and the word was with the reader.",
    "hello there<|endoftext|>in the end",
    "a",
    # longer than the models' 32 positions: truncated at --max-len
    "then the writer sat on the stone and wrote it down again, and again, and again, "
    "until the stone was covered with words.",
]


def tokenize(text, tok_dir):
    # special-token text parsed, as HF's tokenizer.encode in the reference (and tok_encode)
    r = subprocess.run([SMDLM, "tokenize", "-m", tok_dir, "--allow-special", "--text", text],
                       check=True, capture_output=True, text=True)
    return [int(v) for v in r.stdout.split()]


def write_features():
    import torch
    sys.path.insert(0, os.path.join(HERE, "..", "tools"))
    import ref_dit  # noqa: E402
    import ref_gpt2  # noqa: E402
    max_len = 24
    gdir = os.path.join(HERE, "fixtures", "gpt2-tiny")
    with open(os.path.join(gdir, "config.json")) as f:
        gcfg = json.load(f)
    gp = {k[len("transformer."):] if k.startswith("transformer.") else k: v
          for k, v in ref_dit.load_safetensors(os.path.join(gdir, "model.safetensors")).items()}
    ddir = os.path.join(HERE, "fixtures", "tiny-causal")
    with open(os.path.join(ddir, "config.json")) as f:
        dcfg = json.load(f)
    dit = ref_dit.DiT(ref_dit.load_safetensors(os.path.join(ddir, "model.safetensors")), dcfg)
    gfeat, dfeat, lines = [], [], []
    for t in TEXTS:
        ids = tokenize(t, gdir)[:max_len]
        with torch.no_grad():
            h = ref_gpt2.hidden(gp, gcfg, torch.tensor([ids]))
        gfeat.append(h[0, -1].float().numpy())
        ids = tokenize(t, ddir)[:max_len]
        with torch.no_grad():
            h = dit.hidden(dit.embed(torch.tensor([ids])), torch.zeros(1), causal=True)
        dfeat.append(h[0, -1].float().numpy())
        lines.append(json.dumps({"text": t}))
    with open(os.path.join(OUT, "texts.jsonl"), "w") as f:
        f.write("\n".join(lines) + "\n")
    np.save(os.path.join(OUT, "gpt2_features.npy"), np.stack(gfeat))
    np.save(os.path.join(OUT, "dit_features.npy"), np.stack(dfeat))
    print("featurizer references for", len(TEXTS), "texts, max_len", max_len)


def main():
    warnings.filterwarnings("ignore", message="One of the clusters is empty")
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(2021)
    write_curves(rng)
    write_pca(rng)
    write_kmeans(rng)
    if "--no-features" not in sys.argv:
        write_features()


if __name__ == "__main__":
    main()
