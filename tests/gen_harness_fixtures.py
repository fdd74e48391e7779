#!/usr/bin/python3
"""Fixtures for `eval code --prompt-format harness-instruct` (tests/test_codeeval.c), derived
independently of the C code from what lm-evaluation-harness does for the instruct tasks the
paper's reference runs (Dream's copy of the harness with the reference's eval_instruct.patch;
docs/DESIGN.md §6.8 lists the files):

- harness_prompts_<family>.jsonl: {"task_id", "prompt"} for a few HumanEval and MBPP problems:
  the task's doc_to_text as the user message, its gen_prefix as the start of the assistant's
  reply, rendered with the tokenizer_config.json's chat_template by jinja2 (Debian's
  python3-jinja2, configured as transformers configures it) and cut as transformers'
  apply_chat_template(continue_final_message=True) cuts.
- harness_post.json: model responses (hand-written) with the harness's post-processing: the
  `until` cuts, build_predictions_instruct's code block and sanitize() for HumanEval; for MBPP
  the cut response and the program HF code_eval runs (prediction + "\\n" + doc_to_target).
"""
import ast
import gzip
import json
import os

import jinja2
import jinja2.sandbox

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data", "codebench")
FIX = os.path.join(HERE, "fixtures")
OUT = os.path.join(FIX, "codeeval")

HE_TEXT = "Write a solution to the following problem and make sure that it passes the tests:\n```{{prompt}}"
HE_PREFIX = "Here is the completed function:\n```python\n{{prompt}}\n"
HE_UNTIL = ["\nclass", "\ndef", "\n#", "\nif", "\nprint", "<|im_end|>"]
MBPP_TEXT = ("You are an expert Python programmer, and here is your task: {{text}} Your code should pass "
             "these tests:\n\n{{test_list[0]}}\n{{test_list[1]}}\n{{test_list[2]}}")
MBPP_PREFIX = "Here is the completed function:\n```python\n"
MBPP_UNTIL = ["```"]
MBPP_TARGET = "{{test_list[0]}}\n{{test_list[1]}}\n{{test_list[2]}}"


def fill(template, doc):
    return jinja2.Template(template, keep_trailing_newline=True).render(**doc)


def apply_chat_template(config, messages):
    """transformers' rendering (sandboxed jinja2, trim_blocks, lstrip_blocks) with
    continue_final_message=True."""
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    specials = {k: v for k, v in config.items() if k.endswith("_token") and isinstance(v, str)}
    text = env.from_string(config["chat_template"]).render(messages=messages,
                                                            add_generation_prompt=False, **specials)
    final = messages[-1]["content"]
    at = text.rindex(final.strip())
    if text[at:at + len(final.lstrip())] == final:
        return text[:at + len(final.lstrip())]
    return text[:at + len(final.strip())]


def he_problems():
    return {p["task_id"]: p for p in (json.loads(l) for l in gzip.open(os.path.join(DATA, "HumanEval.jsonl.gz"), "rt"))}


def mbpp_problems():
    return {str(r["task_id"]): r for r in (json.loads(l) for l in open(os.path.join(DATA, "mbpp.jsonl")))}


def prompts(family):
    config = json.load(open(os.path.join(FIX, "tiny-%s-tokenizer" % family, "tokenizer_config.json")))
    he, mbpp = he_problems(), mbpp_problems()
    rows = []
    for tid in ("HumanEval/0", "HumanEval/32", "HumanEval/115"):
        doc = he[tid]
        msgs = [{"role": "user", "content": fill(HE_TEXT, doc)},
                {"role": "assistant", "content": fill(HE_PREFIX, doc)}]
        rows.append({"bench": "humaneval", "task_id": tid, "prompt": apply_chat_template(config, msgs)})
    for tid in ("11", "123", "367"):
        doc = mbpp[tid]
        msgs = [{"role": "user", "content": fill(MBPP_TEXT, doc)},
                {"role": "assistant", "content": fill(MBPP_PREFIX, doc)}]
        rows.append({"bench": "mbpp", "task_id": tid, "prompt": apply_chat_template(config, msgs)})
    return rows


def cut(text, until):
    for stop in until:
        text = text.split(stop)[0]
    return text


# ---- sanitize (the harness's humaneval/sanitize_utils.py, restated) ----

def parses(code):
    try:
        ast.parse(code)
    except (SyntaxError, MemoryError):
        return False
    return True


def longest_valid(text):
    lines = text.splitlines()[:100]
    best, best_n = "", 0
    for i in range(len(lines)):
        for j in range(i, len(lines)):
            snippet = "\n".join(lines[i:j + 1])
            if parses(snippet):
                n = sum(1 for line in lines[i:j + 1] if line.strip())
                if n > best_n:
                    best, best_n = snippet, n
    return best


def dependencies(node):
    deps, stack = set(), [node]
    while stack:
        for child in ast.iter_child_nodes(stack.pop()):
            if isinstance(child, ast.Name):
                deps.add(child.id)
            elif isinstance(child, ast.Attribute):
                deps.add(child.attr)
            else:
                stack.append(child)
    return deps


def sanitize(text, entrypoint):
    text = text.replace("\t", "    ").replace("\r\n", "\n").replace("\r", "\n").strip() + "\n"
    tree = ast.parse(longest_valid(text))
    imports, definitions = [], {}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append(node)
        elif isinstance(node, ast.ClassDef):
            definitions[node.name] = node
        elif isinstance(node, ast.FunctionDef):
            if any(isinstance(n, ast.Return) for n in ast.walk(node)):
                definitions[node.name] = node
        elif isinstance(node, ast.Assign) and node.targets and isinstance(node.targets[0], ast.Name):
            definitions[node.targets[0].id] = node
    graph = {name: dependencies(node) for name, node in definitions.items()}
    visited, queue = set(), [entrypoint]
    while queue:
        name = queue.pop(0)
        if name not in visited:
            visited.add(name)
            queue.extend(graph.get(name, set()) - visited)
    out = [ast.unparse(n) for n in imports]
    out += [ast.unparse(node) for name, node in definitions.items() if name in visited]
    return "\n".join(out)


HE_RESPONSES = [
    ("HumanEval/0",
     "    for i, a in enumerate(numbers):\n        for j, b in enumerate(numbers):\n"
     "            if i != j and abs(a - b) < threshold:\n                return True\n    return False\n"
     "```\n\nThe function compares every pair.<|im_end|>\n<|endoftext|>"),
    ("HumanEval/0",
     "    return _any_close(sorted(numbers), threshold)\n\ndef _any_close(xs, t):\n    return False\n"),
    ("HumanEval/0",
     "Sure!\n```python\nimport math\nimport os\nLIMIT = 1e9\nUNUSED = 3\n\ndef has_close_elements(numbers, threshold):\n"
     "\tfor a, b in zip(numbers, numbers[1:]):\n\t\tif abs(a - b) < min(threshold, LIMIT):\n\t\t\treturn True\n"
     "\treturn False\n```\nmore text ``` and more"),
    ("HumanEval/2",
     "    return number - int(number\n"),
    ("HumanEval/2",
     "    return number % 1.0\n\n\nprint(truncate_number(3.5))\n"),
    ("HumanEval/2",
     "    helper = number\n    return helper - math.floor(helper)\r\nimport math\r\nclass Unused:\r\n    pass\r\n"
     "def side():\r\n    print(1)\r\n"),
]

MBPP_RESPONSES = [
    ("11", "def remove_Occ(s,ch):\n    s = s.replace(ch, '', 1)\n    return s[::-1].replace(ch, '', 1)[::-1]\n"
           "```\n\nThis removes the first and the last occurrence."),
    ("11", "def remove_Occ(s, ch):\n    return s<|im_end|>\nassert remove_Occ('a', 'b') == 'a'\n"),
    ("367", "def is_tree_balanced(root):\n    return True\n"),
]


def post():
    he, mbpp = he_problems(), mbpp_problems()
    rows = []
    for tid, response in HE_RESPONSES:
        doc = he[tid]
        r = cut(response, HE_UNTIL)
        code = doc["prompt"] + "\n" + r.split("```python\n", 1)[-1].split("```")[0]
        rows.append({"bench": "humaneval", "task_id": tid, "response": response, "code": code,
                     "sanitized": sanitize(code, doc["entry_point"])})
    for tid, response in MBPP_RESPONSES:
        doc = mbpp[tid]
        prediction = cut(response, MBPP_UNTIL)
        rows.append({"bench": "mbpp", "task_id": tid, "response": response, "code": prediction,
                     "program": prediction + "\n" + fill(MBPP_TARGET, doc)})
    return rows


def main():
    os.makedirs(OUT, exist_ok=True)
    for family in ("dream", "llada"):
        with open(os.path.join(OUT, "harness_prompts_%s.jsonl" % family), "w") as f:
            for row in prompts(family):
                f.write(json.dumps(row) + "\n")
    with open(os.path.join(OUT, "harness_post.json"), "w") as f:
        json.dump(post(), f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
