#!/usr/bin/env node
// check_trained_tokenizer.js — the tokenizer that `smdlm tokenizer train` wrote, as the Hugging Face
// `tokenizers` library sees it, and the library's own BPE trainer on the same words.
//
// Package versions used to produce the committed fixtures:
//   @anush008/tokenizers 0.6.0  (native binding built from the Rust crate tokenizers 0.22.2)
//
// Usage (node_modules stays outside the repository; from the repo root):
//   mkdir -p /tmp/tokgold && (cd /tmp/tokgold && npm init -y >/dev/null &&
//       npm install @anush008/tokenizers@0.6.0)
//   make && ./smdlm tokenizer train --vocab 600 --out tests/fixtures/trained-tokenizer \
//       /usr/share/common-licenses/GPL-3
//   NODE_PATH=/tmp/tokgold/node_modules node tools/check_trained_tokenizer.js [DIR]
//
// DIR defaults to tests/fixtures/trained-tokenizer. The script
//   1. loads DIR/tokenizer.json, and DIR/vocab.json + DIR/merges.txt the way transformers'
//      GPT2TokenizerFast does (ByteLevel pre-tokenizer, the two special tokens added), and fails
//      unless both give the same ids, <|endoftext|> and <|mask|> are the last two ids, and the
//      library saves tokenizer.json back byte for byte (our file is in its canonical form);
//   2. writes DIR/golden.jsonl: {"text","hex","ids","decoded_hex"} per test string
//      (encode with add_special_tokens=false, decode with skip_special_tokens=false; "hex" is
//      the exact UTF-8, "decoded_hex" the decoded text's);
//   3. trains the library's BpeTrainer (BPE model default: vocab 30000, min_frequency 0, no
//      special tokens) on /usr/share/common-licenses/GPL-3 with every line trimmed and empty
//      lines dropped, and writes its merges to DIR/hf_trainer_merges.txt. The library feeds
//      files line by line; with no whitespace at line ends, that splits the text into the same
//      words as one whole document, which is what `smdlm tokenizer train` counts.
// tests/test_bpe_train.c checks the engine against golden.jsonl and the C trainer against
// hf_trainer_merges.txt.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const tk = require('@anush008/tokenizers');

const ROOT = path.resolve(__dirname, '..');
const DIR = path.resolve(process.argv[2] || path.join(ROOT, 'tests/fixtures/trained-tokenizer'));
const CORPUS = '/usr/share/common-licenses/GPL-3';

function die(msg) {
  console.error('check_trained_tokenizer: ' + msg);
  process.exit(1);
}
const hex = (s) => Buffer.from(s, 'utf8').toString('hex');
const sameIds = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);

async function encodeIds(tok, text) {
  const enc = await tok.encode(text, null, { addSpecialTokens: false });
  return enc.getIds();
}

// Test strings: the corpus' own words, words it never saw, whitespace, Unicode, specials.
const STRINGS = [
  '',
  ' ',
  '\n',
  '\n\n',
  '  \n  ',
  'GNU GENERAL PUBLIC LICENSE',
  'Version 3, 29 June 2007',
  ' Copyright (C) 2007 Free Software Foundation, Inc. <https://fsf.org/>',
  '  The GNU General Public License is a free, copyleft license for\nsoftware and other kinds of works.\n\n',
  'You may convey verbatim copies of the Program\'s source code as you receive it, in any medium,',
  'THERE IS NO WARRANTY FOR THE PROGRAM, TO THE EXTENT PERMITTED BY APPLICABLE LAW.',
  "It's the licensee's right; they'll see you've read it, I'm sure we'd agree.",
  'trailing spaces   ',
  '   leading spaces',
  'tabs\tand\t\ttabs',
  'mixed \t \n \t whitespace \n\n  ',
  '    four spaces\n        eight spaces\n\ttab',
  'def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n',
  'int main(void) { return 0x7fffffff >> 3; }',
  '1234567890 3.14159 1,000,000 -42',
  'Supercalifragilisticexpialidocious antidisestablishmentarianism',
  'café naïve résumé Zürich',
  '你好，世界！',
  'Привет, мир!',
  'emoji 😀😃 👨\u200d👩\u200d👧 🇺🇸',
  'nbsp\u00a0here and\u3000ideographic',
  'mongolian\u180evowel separator',
  'nul\u0000byte and \u0001\u007f controls',
  'Hello<|endoftext|>world',
  '<|endoftext|><|mask|>',
  'the <|mask|> is <|mask|><|mask|> masked',
  '<|endoftext| not closed <|mask',
  'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
  'https://www.gnu.org/licenses/ why-not-lgpl.html',
];

async function checkTokenizer() {
  const tjPath = path.join(DIR, 'tokenizer.json');
  const tokJson = tk.Tokenizer.fromFile(tjPath);
  const tokFiles = new tk.Tokenizer(
    await tk.BPE.fromFile(path.join(DIR, 'vocab.json'), path.join(DIR, 'merges.txt')));
  tokFiles.setPreTokenizer(tk.byteLevelPreTokenizer(false, true));
  tokFiles.addSpecialTokens(['<|endoftext|>', '<|mask|>']);

  const V = tokJson.getVocabSize(true);
  if (tokJson.tokenToId('<|endoftext|>') !== V - 2) die('<|endoftext|> is not id V-2');
  if (tokJson.tokenToId('<|mask|>') !== V - 1) die('<|mask|> is not the last id');
  if (tokFiles.getVocabSize(true) !== V) die('vocab.json + merges.txt: another vocabulary size');

  const resaved = path.join(os.tmpdir(), `resaved-${process.pid}.json`);
  tokJson.save(resaved, false);
  const same = fs.readFileSync(resaved).equals(fs.readFileSync(tjPath));
  fs.unlinkSync(resaved);
  if (!same) die('the library does not save tokenizer.json back byte for byte');

  const lines = [];
  for (const text of STRINGS) {
    const ids = await encodeIds(tokJson, text);
    if (!sameIds(ids, await encodeIds(tokFiles, text)))
      die('tokenizer.json and vocab.json + merges.txt disagree on ' + JSON.stringify(text));
    const decoded = await tokJson.decode(ids, false);
    lines.push(JSON.stringify({ text, hex: hex(text), ids, decoded_hex: hex(decoded) }));
  }
  fs.writeFileSync(path.join(DIR, 'golden.jsonl'), lines.join('\n') + '\n');
  console.log(`${DIR}: vocabulary ${V}, ${lines.length} goldens, tokenizer.json canonical`);
}

function trainerMerges() {
  if (!fs.existsSync(CORPUS)) die(CORPUS + ' is missing (Debian base-files)');
  const text = fs.readFileSync(CORPUS, 'utf8').split('\n').map((l) => l.trim())
    .filter((l) => l.length).join('\n') + '\n';
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bpe-'));
  const corpus = path.join(tmp, 'corpus.txt');
  fs.writeFileSync(corpus, text);
  const tok = new tk.Tokenizer(tk.BPE.empty());
  tok.setPreTokenizer(tk.byteLevelPreTokenizer(false, true));
  tok.train([corpus]);
  const saved = path.join(tmp, 'tokenizer.json');
  tok.save(saved, false);
  const merges = JSON.parse(fs.readFileSync(saved, 'utf8')).model.merges;
  fs.rmSync(tmp, { recursive: true });
  fs.writeFileSync(path.join(DIR, 'hf_trainer_merges.txt'),
    '#version: 0.2\n' + merges.map((m) => m.join(' ')).join('\n') + '\n');
  console.log(`hf_trainer_merges.txt: ${merges.length} merges (trimmed ${CORPUS}, ${text.length} chars)`);
}

(async () => {
  await checkTokenizer();
  trainerMerges();
})().catch((e) => die(e.stack || String(e)));
