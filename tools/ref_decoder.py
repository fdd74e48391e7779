"""Reference of the Dream / LLaDA / threshold decoders (docs/DESIGN.md §5) with soft-masking (§3).

Written from the descriptions of Dream's generation_utils `_sample`, LLaDA's generate.py,
Fast-dLLM's threshold rule and IBM's dream_sm.patch, with the project's RNG
(tools/ref_dit.py `Rng`) drawn in the order NOTES.md ("Decoders") documents, so that the C
decoders (src/generate/decoder.c) must reproduce it token for token. Used offline only, by
tests/gen_decoder_fixtures.py; run with Debian's /usr/bin/python3.

The model is any callable forward(x [B,T] int64, soft, window=None) -> raw logits [B,T,V]
(float32), soft being None or IBM's (indices, weights) pair. Without a key/value cache the
reference always computes whole canvases; with one (cache "prefix" or "dual", Fast-dLLM's) a
full forward is a refresh and a window (lo, hi) asks the model for rows [lo, hi) computed
against the keys/values of the last refresh. Dream with a block length below gen_len follows
Fast-dLLM's generation_utils_block. It also records the smallest margin by which any decision was taken (`margin`), so that fixture
cases can be chosen far from float32 rounding ties between PyTorch and the C forward.
"""
import numpy as np
import torch

import ref_dit as R
import ref_dream as RD

ALGS = ("origin", "maskgit_plus", "topk_margin", "entropy")


def torch_linspace(n_steps, eps=1e-3):
    return torch.linspace(1, eps, n_steps + 1, dtype=torch.float32).numpy()


def dream_quota(n_mask, ts, i, steps):
    """int(num_mask · (1 − s/t)) in float32; everything at the last step."""
    if i >= steps - 1:
        return n_mask
    ratio = np.float32(1) - ts[i + 1] / ts[i]
    return int(np.float32(n_mask) * ratio)


class Margin:
    def __init__(self):
        self.value = float("inf")

    def note(self, m):
        self.value = min(self.value, float(m))


def inverse_cdf(p, u, margin):
    c = np.cumsum(p.astype(np.float64))
    target = u * c[-1]
    i = int(np.searchsorted(c, target, side="right"))
    i = min(i, len(p) - 1)
    lo = c[i - 1] if i > 0 else 0.0
    margin.note(min(abs(target - lo), abs(c[i] - target)) / c[-1])
    return i


def softmax64(z):
    z = z.astype(np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


def filtered_probs(z, top_p, top_k, margin):
    """Dream's top_p_logits then top_k_logits on the (tempered) logits z, then softmax."""
    keep = np.ones(len(z), dtype=bool)
    if top_p < 1.0:
        p = softmax64(z)
        order = sorted(range(len(z)), key=lambda v: (-p[v], v))
        cum = 0.0
        keep[:] = False
        for j, v in enumerate(order):
            if j > 0 and cum > top_p:
                break
            prev, cum = cum, cum + p[v]
            keep[v] = True
        if keep.sum() > 1:  # the two running sums either side of top_p decided the cut
            margin.note(min(abs(prev - top_p), abs(cum - top_p)))
    if top_k > 0 and keep.sum() > top_k:
        vals = np.sort(z[keep])[::-1]
        kth = vals[top_k - 1]
        margin.note(kth - vals[top_k])
        keep &= z >= kth
    zz = np.where(keep, z.astype(np.float64), -np.inf)
    e = np.exp(zz - zz.max())
    return e / e.sum()


def argmax_margin(z, margin):
    s = np.sort(z)
    margin.note(s[-1] - s[-2])
    return int(np.argmax(z))


class Item:
    def __init__(self, b, t, cand):
        self.b, self.t, self.cand = b, t, cand
        self.coin = False
        self.u_tok = self.u_rnd = 0.0
        self.token, self.conf = -1, 0.0


def decode(forward, V, mask_id, shift, prompt, gen_len, style="dream", steps=None,
           tokens_per_step=0, temperature=0.0, top_p=1.0, top_k=0, alg="origin", alg_temp=0.0,
           block_length=0, remasking="low_confidence", threshold=0.0, eos_id=-1, eos_penalty=0.0,
           seed=0, sm=None, on_step=None, cfg_scale=0.0, logits_inf_id=-1, conf_inf_id=-1,
           cache=None, cache_refresh=0):
    """prompt: int array [B, P]. Returns (canvas [B, T], gen lengths before EOS, forwards,
    steps, margin). sm: None or dict(scale, centre, steepness, k[, schedule]); a schedule scales
    λ by the share of the initially masked positions still masked (the whole batch, as IBM's
    dream_sm.patch counts). LLaDA generate.py's options: cfg_scale (guidance against the canvas
    with the prompt masked), logits_inf_id (logits_eos_inf: that logit −∞) and conf_inf_id
    (confidence_eos_eot_inf: the confidence's softmax with that logit −∞). cache: None, "prefix"
    or "dual", refreshed at every block start and every cache_refresh-th forward (0: never
    else)."""
    B, P = prompt.shape
    T = P + gen_len
    if tokens_per_step > 0:
        steps = -(-gen_len // tokens_per_step)
    x = np.full((B, T), mask_id, dtype=np.int64)
    x[:, :P] = prompt
    max_gen_length = int((x == mask_id).sum())
    prompt_index = x != mask_id
    rngs = [R.Rng(seed + b) for b in range(B)]
    margin = Margin()
    done = [False] * B
    state = dict(logits=None, changed=True, fbrows=None, forwards=0, steps=0, kv_valid=False,
                 kv_since=0, blk_start=P)
    dream_blocks = style == "dream" and block_length not in (0, gen_len)

    def first_eos(b):
        if eos_id >= 0:
            hits = np.nonzero(x[b, P:] == eos_id)[0]
            if len(hits):
                return P + int(hits[0])
        return T

    def update_done(b):
        end = first_eos(b)
        done[b] = not (x[b, P:end] == mask_id).any()

    def pred_row(t):
        return (t - 1 if t > 0 else 0) if shift else t

    def penalised(row):
        z = row.astype(np.float32).copy()
        if eos_penalty != 0.0:
            z[eos_id] = np.float32(z[eos_id] - np.float32(eos_penalty))
        return z

    def window(blk_end):
        """Rows the step computes: the whole canvas, or the cache mode's window after a refresh
        (Dream blocks: from the block start, whose first position the refresh revealed)."""
        if cache is None or not state["kv_valid"] or \
                (cache_refresh > 0 and state["kv_since"] >= cache_refresh):
            return 0, T
        start = state["blk_start"]
        lo = start - 1 if shift and not dream_blocks and start > 0 else start
        return lo, (blk_end if cache == "dual" else T)

    def run_forward(lo, hi):
        soft = None
        if sm is not None and state["fbrows"] is not None:
            xt = torch.from_numpy(x)
            prev = torch.from_numpy(state["fbrows"])
            scale = RD.time_dependence(max_gen_length, int((x == mask_id).sum()), sm["scale"],
                                       sm.get("schedule", "none"))
            _, _, _, idx, w, _ = R.sm_feedback(prev, xt, mask_id, torch.tensor(float(scale)),
                                              torch.tensor(sm["centre"]),
                                              torch.tensor(sm["steepness"]), sm["k"])
            soft = (idx, w)
        with torch.no_grad():
            if cfg_scale > 0:
                un_x = x.copy()
                un_x[prompt_index] = mask_id
                both = forward(torch.from_numpy(np.concatenate([x, un_x])), None)
                cond, uncond = torch.chunk(both, 2, dim=0)
                state["logits"] = (uncond + (cfg_scale + 1) * (cond - uncond)).numpy()
            elif (lo, hi) == (0, T):
                state["logits"] = forward(torch.from_numpy(x), soft).numpy()
            else:
                state["logits"] = forward(torch.from_numpy(x), soft, (lo, hi)).numpy()
        if cache is not None:
            if (lo, hi) == (0, T):
                state["kv_valid"], state["kv_since"] = True, 0
            state["kv_since"] += 1
        state["forwards"] += 1
        state["changed"] = False

    def predict(it):
        row = state["logits"][it.b, pred_row(it.t)]
        z = penalised(row)
        if sm is not None:
            state["newfb"][it.b, it.t] = z
        origin = style == "dream" and alg == "origin" and threshold == 0.0
        if not it.cand or (origin and not it.coin):
            return
        z = z.copy()
        z[mask_id] = -np.inf  # a revealed position never takes the mask id
        if logits_inf_id >= 0:
            z[logits_inf_id] = -np.inf
        zt = (z / np.float32(temperature)).astype(np.float32) if temperature > 0 else z
        p = filtered_probs(zt, top_p, top_k, margin)
        if temperature > 0:
            it.token = inverse_cdf(p, it.u_tok, margin)
        else:
            it.token = argmax_margin(zt, margin)
        if style == "llada":
            if remasking == "random":
                it.conf = it.u_rnd
            else:
                zc = z.copy()
                if conf_inf_id >= 0:
                    zc[conf_inf_id] = -np.inf
                it.conf = float(softmax64(zc)[it.token])
            return
        if alg == "topk_margin":
            s = np.sort(p)
            it.conf = float(s[-1] - s[-2])
        elif alg == "entropy":
            it.conf = float((p * np.log(p + 1e-10)).sum())
        else:
            it.conf = float(p[it.token])

    def select(items, b, quota, head):
        cands = [it for it in items if it.cand]
        origin = style == "dream" and alg == "origin" and threshold == 0.0
        if not origin and not head:
            for it in cands:
                it.coin = False
            quota = min(quota, len(cands))
            if threshold == 0.0 and style == "dream" and alg_temp > 0:
                c = np.array([it.conf for it in cands], dtype=np.float64) / alg_temp
                w = np.exp(c - c.max())
                for _ in range(quota):
                    j = inverse_cdf(w, rngs[b].uniform(), margin)
                    cands[j].coin = True
                    w[j] = 0.0
            else:
                order = sorted(cands, key=lambda it: (-it.conf, it.t))
                if threshold > 0:
                    quota = 1
                    for it in order[1:]:
                        margin.note(abs(it.conf - np.float32(threshold)))
                    while quota < len(order) and not (order[quota].conf < np.float32(threshold)):
                        quota += 1
                elif 0 < quota < len(order):
                    margin.note(order[quota - 1].conf - order[quota].conf)
                for it in order[:quota]:
                    it.coin = True
        for it in items:
            if it.cand and it.coin:
                x[it.b, it.t] = it.token
                state["changed"] = True

    def step(blk_end, p_transfer, quotas, head=False):
        """head: Dream blocks' first step, which reveals the block's first masked position."""
        lo, hi = window(blk_end)
        rows = {}
        for b in range(B):
            if done[b] or not (x[b, P:blk_end] == mask_id).any():
                continue
            items = []
            masked = [t for t in range(state["blk_start"], blk_end) if x[b, t] == mask_id]
            head_t = masked[0] if head and masked else -1
            for t in range(P, T):
                if x[b, t] != mask_id:
                    continue
                cand = t < blk_end and (not head or t == head_t)
                if not cand and sm is None:
                    continue
                if not cand and not lo <= pred_row(t) < hi:
                    continue  # outside the window: its feedback stays the last forward's
                it = Item(b, t, cand)
                items.append(it)
                if not cand:
                    continue
                g = rngs[b]
                if head:
                    it.coin = True
                    if temperature > 0:
                        it.u_tok = g.uniform()
                    continue
                if style == "dream" and alg == "origin" and threshold == 0.0:
                    u = g.uniform()
                    margin.note(abs(u - float(p_transfer)))
                    it.coin = u < float(p_transfer)
                    if it.coin and temperature > 0:
                        it.u_tok = g.uniform()
                    continue
                if temperature > 0:
                    it.u_tok = g.uniform()
                if style == "llada" and remasking == "random":
                    it.u_rnd = g.uniform()
            rows[b] = items
        if not rows:
            return False
        if sm is not None or state["logits"] is None or state["changed"]:
            run_forward(lo, hi)
        if sm is not None:
            state["newfb"] = np.zeros((B, T, V), dtype=np.float32) if state["fbrows"] is None \
                else state["fbrows"].copy()
        for b, items in rows.items():
            for it in items:
                predict(it)
        for b, items in rows.items():
            select(items, b, quotas[b], head)
            update_done(b)
        if sm is not None:
            state["fbrows"] = state["newfb"]
        state["steps"] += 1
        if on_step:
            on_step(x.copy())
        return True

    if style == "dream" and not dream_blocks:
        ts = torch_linspace(steps)
        i = 0
        while threshold > 0 or i < steps:
            p_transfer = np.float32(1) - ts[i + 1] / ts[i] if i < steps - 1 else np.float32(1)
            quotas = [1 if threshold > 0 else
                      dream_quota(int((x[b, P:] == mask_id).sum()), ts, i, steps) for b in range(B)]
            if not step(T, p_transfer, quotas):
                break
            i += 1
    else:
        L = block_length or gen_len
        nblocks = gen_len // L
        assert gen_len % L == 0 and (threshold > 0 or steps % nblocks == 0)
        spb = steps // nblocks
        ts = torch_linspace(spb) if dream_blocks and threshold == 0 else None
        for k in range(nblocks):
            start, end = P + k * L, P + (k + 1) * L
            n_block = [int((x[b, start:end] == mask_id).sum()) for b in range(B)]
            state["logits"] = None  # new candidates: a fresh forward
            state["blk_start"], state["kv_valid"] = start, False  # a refresh at every block start
            i = 0
            while threshold > 0 or i < spb:
                head = dream_blocks and i == 0
                if threshold > 0 or head:
                    quotas = [1] * B
                elif dream_blocks:  # generation_utils_block: the block's masks, t = ts[i]
                    quotas = [dream_quota(int((x[b, start:end] == mask_id).sum()), ts, i, spb)
                              for b in range(B)]
                else:
                    quotas = [n // spb + (1 if i < n % spb else 0) for n in n_block]
                if not step(end, 1.0, quotas, head):
                    break
                i += 1
    gens = []
    for b in range(B):
        gens.append(first_eos(b) - P)
    return x, gens, state["forwards"], state["steps"], margin.value


def dit_forward(model):
    """The tiny DiT as a decoder model: raw logits at σ = 0 (no diffusion time)."""
    def f(x, soft):
        sigma = torch.zeros(x.shape[0])
        return model.forward(x, sigma, soft=soft)
    return f
