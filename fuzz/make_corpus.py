#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/TARGET/ from the test fixtures (tests/fixtures, tests/bad)
and the benchmark data (data/codebench). Each seed is the mode byte the target reads first
(see the target's comment), then the file. Run from the repository root; the data and checkpoint
targets write their seeds themselves (SMDLM_FUZZ_SEEDS, see fuzz/README.md)."""
import glob
import gzip
import io
import json
import re
import os
import shutil
import zipfile
import zlib

OUT = "fuzz/corpus"


def seed(target, mode, data, name):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    prefix = b"" if mode is None else bytes([mode])
    with open(os.path.join(d, name.replace("/", "_")), "wb") as f:
        f.write(prefix + data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def small(paths, limit=32768):
    return [p for p in sorted(paths) if os.path.getsize(p) <= limit]


def lines(path, n):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return "".join(next(f) for _ in range(n))


def c_string_runs(path):
    """The C string literals of a source file, adjacent ones joined, unescaped (bytes)."""
    text = open(path, encoding="utf-8").read()
    literal = r'"(?:[^"\\\n]|\\.)*"'
    for run in re.finditer(r"%s(?:\s*%s)*" % (literal, literal), text):
        parts = re.findall(literal, run.group(0))
        joined = "".join(p[1:-1] for p in parts).encode()
        yield joined.decode("unicode_escape").encode("latin-1")


def main():
    for t in ("fuzz_safetensors", "fuzz_npy", "fuzz_tokenizer", "fuzz_config", "fuzz_tokenizer_config",
              "fuzz_train_config", "fuzz_jsonl", "fuzz_http_request"):
        shutil.rmtree(os.path.join(OUT, t), ignore_errors=True)

    # safetensors: byte 0 even, a .safetensors file; odd, an index beside two shards
    for p in small(glob.glob("tests/bad/st_*.safetensors") + glob.glob("tests/bad/st_*/*.safetensors")):
        seed("fuzz_safetensors", 0, read(p), p)
    for p in small(glob.glob("tests/bad/st_*/model.safetensors.index.json")
                   + ["tests/fixtures/tiny-sharded/model.safetensors.index.json"]):
        seed("fuzz_safetensors", 1, read(p), p)
    # npy: the file
    for p in small(glob.glob("tests/bad/*.npy") + glob.glob("tests/fixtures/*.npy")
                   + glob.glob("tests/fixtures/tiny-dream/ids*.npy")):
        seed("fuzz_npy", None, read(p), p)
    # tokenizer: text to encode
    for i, line in enumerate(open("tests/fixtures/tokenizer/golden.jsonl", encoding="utf-8")):
        if i % 8 == 0 and json.loads(line)["text"]:
            seed("fuzz_tokenizer", None, json.loads(line)["text"], "golden_%d" % i)
    seed("fuzz_tokenizer", None, read("data/codebench/README.md"), "codebench_README.md")

    # config: 0 MDLM, 1 transparency_config.json, 2 Dream/LLaDA, 3 GPT-2, 4 model_dir_type
    mdlm = glob.glob("tests/fixtures/tiny*/config.json") + glob.glob("tests/bad/model-*/config.json")
    for p in sorted(mdlm):
        cfg = read(p)
        seed("fuzz_config", 2 if b'"Dream"' in cfg or b'"llada"' in cfg else 0, cfg, p)
        seed("fuzz_config", 4, cfg, "dir_" + p)
    for p in sorted(glob.glob("tests/bad/dream-*/config.json") + glob.glob("tests/bad/llada-*/config.json")):
        seed("fuzz_config", 2, read(p), p)
    seed("fuzz_config", 3, read("tests/fixtures/gpt2-tiny/config.json"), "gpt2-tiny_config.json")
    seed("fuzz_config", 4, read("tests/fixtures/gpt2-tiny/config.json"), "dir_gpt2-tiny_config.json")
    for p in sorted(glob.glob("tests/bad/*/transparency_config.json") + glob.glob("tests/fixtures/*/sm_config.json")):
        seed("fuzz_config", 1, read(p), p)

    # tokenizer_config: 0 ChatML, 1 LLaDA tokenizer_config.json, 2 merges.txt
    for p in ("tests/fixtures/tiny-dream-tokenizer", "tests/fixtures/qwen-tokenizer", "tests/fixtures/trained-tokenizer"):
        seed("fuzz_tokenizer_config", 0, read(p + "/tokenizer_config.json"), p + "/tokenizer_config.json")
    for p in ("tests/fixtures/tiny-llada-tokenizer", "tests/fixtures/llada-tokenizer"):
        seed("fuzz_tokenizer_config", 1, read(p + "/tokenizer_config.json"), p + "/tokenizer_config.json")
    for p in ("tests/fixtures/byte-tokenizer/merges.txt", "tests/fixtures/tiny-causal/merges.txt",
              "tests/fixtures/trained-tokenizer/merges.txt"):
        seed("fuzz_tokenizer_config", 2, read(p), p)

    # train_config: 0 --config, 1 run.json, 2 train_log.jsonl
    config = {"hidden": 64, "n_heads": 4, "n_blocks": 2, "cond_dim": 32, "objective": "mdlm",
              "data": "data/tiny", "seq_len": 32, "seed": 1, "sm_k": 3, "sm_scale": 0.5,
              "sm_centre": -0.75, "sm_steepness": 6.6666667, "batch": 8, "accum": 1, "lr": 3e-4,
              "sm_lr": 0.01, "weight_decay": 0, "clip": 1, "ema": 0.9999, "warmup": 10,
              "schedule": "cosine", "min_lr_ratio": 0.1, "sm_prob": 0.5, "steps": 100,
              "log_every": 10, "val_every": 50, "val_batches": 2, "ckpt_every": 50,
              "keep_last": 3, "milestone_every": 0, "samples": 1, "threads": 2}
    seed("fuzz_train_config", 0, json.dumps(config, indent=2), "config.json")
    seed("fuzz_train_config", 0, json.dumps({"init": "models/default", "out": "runs/a", "steps": 5}), "init.json")
    run = {"format": "smdlm-run", "code_version": "0.1.0 (commit 0123456789ab)",
           "data_fingerprint": "1a2b3c4d:1234", "config": dict(config, out="runs/a")}
    seed("fuzz_train_config", 1, json.dumps(run, indent=2), "run.json")
    log = "".join('{"step":%d,"tokens":%d,"loss":%.4f,"lr":0.0003,"grad_norm":1.5,"step_s":0.01,'
                  '"elapsed_s":%.2f,"sm_passes":1,"sm_scale":0.5,"sm_centre":-0.75,"sm_steepness":6.67}\n'
                  % (s, s * 256, 4.2 - s / 100, s / 10) for s in range(10, 60, 10))
    log += '{"step":50,"tokens":12800,"val_nats":3.9,"val_ppl":49.4}\n{"step":50,"checkpoint_s":0.1,"checkpoint_mib":1.2}\n'
    seed("fuzz_train_config", 2, log, "train_log.jsonl")
    seed("fuzz_jsonl", 4, log, "plot_train_log.jsonl")
    seed("fuzz_jsonl", 132, log, "plot_tokens_train_log.jsonl")

    # jsonl: 0 data prepare, 1 tokenizer train, 2 mauve, 3 genppl texts
    texts = "".join(json.dumps({"text": json.loads(l)["text"], "id": i}) + "\n"
                    for i, l in enumerate(open("tests/fixtures/tokenizer/golden.jsonl", encoding="utf-8"))
                    if i % 6 == 0)
    for mode, name in ((0, "prepare"), (128, "prepare_skip_bad"), (1, "bpe_train"), (2, "mauve"), (3, "genppl")):
        seed("fuzz_jsonl", mode, texts, name + ".jsonl")
    seed("fuzz_jsonl", 0, read("tests/fixtures/llada-tokenizer/chat.jsonl"), "prepare_no_text.jsonl")
    # 5 code samples, 6-9 problem files
    he = [json.loads(l) for l in lines("data/codebench/HumanEval.jsonl.gz", 3).splitlines()]
    samples = "".join(json.dumps({"task_id": p["task_id"], "completion": p["canonical_solution"]}) + "\n" for p in he)
    seed("fuzz_jsonl", 5, samples, "code_samples.jsonl")
    seed("fuzz_jsonl", 6, lines("data/codebench/HumanEval.jsonl.gz", 2), "HumanEval.jsonl")
    seed("fuzz_jsonl", 136, gzip.compress(lines("data/codebench/HumanEval.jsonl.gz", 2).encode(), mtime=0),
         "HumanEval.jsonl.gz")
    plus = min(gzip.open("data/codebench/HumanEvalPlus.jsonl.gz", "rt", encoding="utf-8"), key=len)
    seed("fuzz_jsonl", 7, plus, "HumanEvalPlus.jsonl")
    seed("fuzz_jsonl", 8, lines("data/codebench/mbpp.jsonl", 2), "mbpp.jsonl")
    sanitized = json.load(open("data/codebench/sanitized-mbpp.json", encoding="utf-8"))[:2]
    seed("fuzz_jsonl", 9, json.dumps(sanitized, indent=1), "sanitized-mbpp.json")

    # .ckpt: 0 the pickle of a Lightning checkpoint, 1 the checkpoint as a zip (its small members)
    with zipfile.ZipFile("tests/fixtures/ckpt/lightning.ckpt") as z:
        pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
        seed("fuzz_ckpt", 0, z.read(pkl), "lightning_data.pkl")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as out:
            for n in z.namelist():
                if z.getinfo(n).file_size <= 4096:
                    out.writestr(n, z.read(n))
        seed("fuzz_ckpt", 1, buf.getvalue(), "lightning_small_members.ckpt")
    # a checkpoint's COMPLETE manifest of fuzz_manifest's directory (a: "abc", b.json: "{}\n")
    seed("fuzz_manifest", None, "3 %08x a\n3 %08x b.json\n" % (zlib.crc32(b"abc"), zlib.crc32(b"{}\n")),
         "COMPLETE")

    # http_request: request bodies of tests/test_server.c; mode % 7: 2 * model (MDLM, LLaDA,
    # Dream) + route (0 completions, 1 chat); 6 an Authorization header
    bodies = sorted({b for b in c_string_runs("tests/test_server.c") if b.startswith(b"{")})
    for i, body in enumerate(bodies):
        chat = b'"messages"' in body
        for model in range(3):
            seed("fuzz_http_request", 2 * model + chat, body, "body_%d_%s_%d" % (i, "chat" if chat else "completions", model))
    # a canvas of mask segments beyond the context, stopped at the second segment (on a model of
    # long context it grew to 10^9 positions first)
    seed("fuzz_http_request", 0, json.dumps({"canvas": [{"mask": 128}] * 40}), "canvas_beyond_context")
    for i, header in enumerate(("Bearer s3cret", "Bearer s3cre", "bearer s3cret", "Bearer s3cret ", "Basic czNjcmV0")):
        seed("fuzz_http_request", 6, header, "authorization_%d" % i)


if __name__ == "__main__":
    main()
