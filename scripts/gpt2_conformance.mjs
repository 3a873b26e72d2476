// Generates GPT-2 BPE conformance cases for the C++ tokenizer from two
// independent JavaScript reference encoders (js-tiktoken with its bundled
// gpt2 ranks, and gpt-3-encoder with OpenAI's encoder.json / vocab.bpe).
//
// How to run (packages are resolved from the *current directory's*
// node_modules, not from next to this script):
//
//   mkdir -p /tmp/oracle && cd /tmp/oracle && npm init -y >/dev/null &&
//   npm install js-tiktoken@1.0.21 gpt-3-encoder@1.1.4 &&
//   node /work/main/scripts/gpt2_conformance.mjs
//
// Optional arguments: [output.json] [path/to/tinyshakespeare/input.txt]
// Defaults are relative to the repository this script lives in:
//   tests/fixtures/data/gpt2_conformance.json
//   data/tinyshakespeare/input.txt
//
// Every case is encoded by both encoders; cases where they disagree are left
// out of the output and listed on stderr (exit status 1 if any). "<|endoftext|>"
// is always encoded as plain text (no special-token handling). Each case is
// also checked to round-trip through js-tiktoken's decode.

import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import fs from "node:fs";
import path from "node:path";

const require = createRequire(process.cwd() + "/");
const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..");

const outPath = path.resolve(process.argv[2] ?? path.join(repo, "tests/fixtures/data/gpt2_conformance.json"));
const shakespearePath = path.resolve(process.argv[3] ?? path.join(repo, "data/tinyshakespeare/input.txt"));

// --- reference encoders -----------------------------------------------------
const pkgVersion = (name) =>
  JSON.parse(fs.readFileSync(path.join(process.cwd(), "node_modules", name, "package.json"), "utf8")).version;
const { Tiktoken } = require("js-tiktoken/lite");
const gpt2RanksMod = require("js-tiktoken/ranks/gpt2");
const tiktoken = new Tiktoken(gpt2RanksMod.default ?? gpt2RanksMod);
const gpt3 = require("gpt-3-encoder");

// allowedSpecial = none, disallowedSpecial = none: "<|endoftext|>" is plain text.
const encTik = (s) => Array.from(tiktoken.encode(s, [], []));
const encG3 = (s) => Array.from(gpt3.encode(s));

const source = `js-tiktoken@${pkgVersion("js-tiktoken")} (ranks/gpt2); cross-checked with gpt-3-encoder@${pkgVersion("gpt-3-encoder")}`;

// --- deterministic PRNG (mulberry32) ----------------------------------------
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// --- cases ------------------------------------------------------------------
const cases = []; // {text, note?}
const add = (text, note) => cases.push(note ? { text, note } : { text });

// Empty and single characters.
add("", "empty string");
for (const c of ["a", "Z", "0", "9", " ", "\n", "\t", "\r", "!", "'", "\"", ".", ",", "~", "\u0000", "\u007f",
                 "é", "ß", "€", "中", "あ", "한", "😀", "\u00a0", "\u3000", "\u200b"]) {
  add(c, "single character");
}

// ASCII prose.
add("Hello world");
add("Hello, world!");
add("The quick brown fox jumps over the lazy dog.");
add("It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness.");
add("GPT-2 is a large transformer-based language model with 1.5 billion parameters.");
add("Mr. Smith went to Washington D.C. on Jan. 5th; he said: \"Hi!\"");
add("ALL CAPS SENTENCE WITH SOME WORDS");
add("mIxEd CaSe TeXt");
add("Hello world\nSecond line\nThird line\n");

// Contractions.
for (const t of ["it's", "can't", "you're", "we've", "I'm", "we'll", "he'd", "don't", "y'all", "o'clock",
                 "IT'S", "CAN'T", "YOU'RE", "WE'VE", "I'M", "WE'LL", "HE'D", "JOHN'S", "SHE'LL",
                 "it's it'S iT's", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "''s", "'''",
                 " 's", "'s'", "rock 'n' roll", "the dogs' bones", "'tis", "'twas", "I'd've", "shouldn't've",
                 "it’s", "don’t", "we’ll", "‘quoted’", "“double curly”",
                 "He said 'hello' and 'goodbye'."]) {
  add(t);
}

// Digits and numbers.
for (const t of ["1234567890", "3.14159", "1,000,000", "2024-01-01", "0", "00000", "007", "12:30:45",
                 "+1 (555) 123-4567", "$19.99", "100%", "1e10", "-42", "0x1F", "1st 2nd 3rd 4th",
                 "3.14159265358979323846264338327950288419716939937510",
                 "12345678901234567890123456789012345678901234567890",
                 "version 1.2.3-beta+build.42", "abc123def", "123abc", "a1b2c3d4", "v2", "x86_64",
                 "١٢٣٤٥", "१२३", "①②③", "½ ¾", "²³"]) {
  add(t);
}

// Whitespace runs.
for (const t of ["a  b", "a   b", "   x", "x   ", "\t\t\tx", "x\t", "\r\n", "a\r\nb", "a\r\n\r\nb",
                 "\n\n\n", "a\n\n\nb", "  ", "   ", "          ", "\t", "\t\t", " \t \n ",
                 "hello  world", "hello   world", "hello    world", "trailing spaces   ",
                 "   leading spaces", "space before punctuation !", "a , b . c ?", "a\tb\tc",
                 "line1\n  indented\n    more\n", "x \n y", "\n x", " \n", "\n ", "a \u00a0b",
                 "\u00a0\u00a0x", "x\u3000y", "\u3000\u3000", "a\u200bb", "\u200b", "a\u2028b",
                 "\u000b\u000c", "word\u0085word", "end\n"]) {
  add(t, "whitespace");
}

// Unicode scripts.
for (const t of ["café", "naïve", "Ångström", "résumé", "façade", "Zürich", "señor", "Œuvre", "Straße",
                 "Ελληνικά γλώσσα", "Привет, мир!", "Здравствуйте", "مرحبا بالعالم", "שלום עולם",
                 "नमस्ते दुनिया", "สวัสดีชาวโลก", "你好，世界！", "汉字测试", "日本語のテキスト",
                 "こんにちは世界", "カタカナ", "ひらがな", "안녕하세요 세계", "한국어",
                 "Tiếng Việt", "ქართული", "Հայերեն", "ᚠᚢᚦ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𝟘𝟙𝟚"]) {
  add(t, "unicode script");
}

// Emoji and combining sequences.
for (const t of ["😀", "😀😀😀", "👨‍👩‍👧‍👦", "🇫🇷", "🇫🇷🇩🇪🇯🇵", "👍🏽", "👍🏽 nice", "❤️", "☺︎", "I ❤️ NY",
                 "ab😀cd", "hello 😀 world", "😀!", "e\u0301", "cafe\u0301", "a\u0308", "n\u0303o",
                 "\u0301", " \u0301", "Z\u0351\u0352\u0353\u0354ALGO", "🏳️‍🌈", "🧑🏿‍💻", "*️⃣", "🀄"]) {
  add(t, "emoji/combining");
}

// Code, markup, URLs, paths.
for (const t of [
  "#include <iostream>\nint main() {\n    std::cout << \"Hello\" << std::endl;\n    return 0;\n}\n",
  "template <typename T> auto f(T&& x) -> decltype(x) { return std::forward<T>(x); }",
  "def foo(x):\n    if x > 0:\n        return x ** 2\n    return None\n",
  "for i in range(10):\n\tprint(f\"{i:03d}\")\n",
  "{\"key\": \"value\", \"n\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
  "<html><body><p class=\"x\">Hello &amp; welcome</p></body></html>",
  "^[a-zA-Z0-9_.+-]+@[a-zA-Z0-9-]+\\.[a-zA-Z0-9-.]+$",
  "s/\\s+$//g; /(?:foo|bar)*\\d{3,}/",
  "https://www.example.com/path/to/page?query=1&other=two#fragment",
  "http://localhost:8080/api/v1/users/42",
  "user.name+tag@example.co.uk",
  "/usr/local/lib/libfoo.so.1.2.3",
  "C:\\Windows\\System32\\drivers\\etc\\hosts",
  "./scripts/gpt2_conformance.mjs --flag=value -v",
  "SELECT * FROM users WHERE id = 1 AND name LIKE '%bob%';",
  "x = a->b; y = c::d; z = e?.f ?? g;",
  "if (a != b && c <= d || !e) { x += 1; y -= 2; z *= 3; }",
  "// comment\n/* block */\n# hash\n-- sql",
  "```python\nprint('hi')\n```",
  "| col1 | col2 |\n|------|------|\n| a    | b    |",
  "\\n\\t\\r\\\\",
]) {
  add(t, "code");
}

// Long words.
add("a".repeat(300), "300 x 'a'");
add("supercalifragilisticexpialidocious");
add("Pneumonoultramicroscopicsilicovolcanoconiosis");
add("antidisestablishmentarianism");
add(" " + "b".repeat(100), "space + 100 x 'b'");
add("ab".repeat(150), "'ab' x 150");
{
  const rnd = mulberry32(0x5eed);
  const letters = "abcdefghijklmnopqrstuvwxyz";
  let s = "";
  for (let i = 0; i < 2000; i++) s += letters[Math.floor(rnd() * 26)];
  add(s, "2000 deterministic random lowercase letters (mulberry32 seed 0x5eed)");
  let m = "";
  const mixed = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;'!?-\n";
  for (let i = 0; i < 1000; i++) m += mixed[Math.floor(rnd() * mixed.length)];
  add(m, "1000 deterministic random mixed chars (same PRNG stream)");
}
add("1".repeat(100), "100 x '1'");
add("😀".repeat(50), "50 x emoji");
add("中".repeat(100), "100 x CJK");

// Punctuation runs.
for (const t of ["!!!???", "...", "…", "----", "====", "$$$", "***", "###", "@@@", "~~~", "___", "<<<>>>",
                 "?!", "!!1!", "--", "—", "–", ";;", "::", "()", "[]{}", "\"\"\"", "''", "``", "&&||", "%%%",
                 "a...b", "word!!!", "end.", "(parenthetical)", "[bracketed]", "...and then", "!?!? ok"]) {
  add(t, "punctuation");
}

// Mixed scripts.
for (const t of ["abc123def", "ab😀cd", "hello世界", "Москва2024", "αβγ123", "test-ΑΒΓ-тест", "日本Japan日本",
                 "e=mc²", "H₂O", "naïve café résumé 123", "x😀1😀!"]) {
  add(t, "mixed");
}

// Special-token literal as plain text.
for (const t of ["<|endoftext|>", "Hello<|endoftext|>World", "a <|endoftext|> b", "<|endoftext|><|endoftext|>",
                 "<|endoftext|>\n", "<|endoftext", "endoftext|>", "<|fim_prefix|>", "<|im_start|>user"]) {
  add(t, "special-token text encoded as plain text");
}

// Cache/key-collision-style tokens (object property names, commas inside merges).
for (const t of ["constructor", "__proto__", "toString", "hasOwnProperty", ",,,", ", , ,", "a,b", ",\n,",
                 "1,2,3,4,5"]) {
  add(t, "tricky object keys / commas");
}

// tinyshakespeare.
{
  const text = fs.readFileSync(shakespearePath, "utf8");
  const lines = text.split("\n").filter((l) => l.length > 0);
  const rnd = mulberry32(20240101);
  const seen = new Set();
  while (seen.size < 30) seen.add(Math.floor(rnd() * lines.length));
  for (const i of [...seen].sort((a, b) => a - b)) add(lines[i], `tinyshakespeare non-empty line ${i}`);
  const start = 100000;
  add(text.slice(start, start + 5000), `tinyshakespeare input.txt chars [${start}, ${start + 5000})`);
  add(text.slice(0, 2000), "tinyshakespeare input.txt chars [0, 2000)");
}

// --- sanity: no unpaired surrogates -----------------------------------------
const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
for (const c of cases) {
  if (loneSurrogate.test(c.text)) throw new Error(`unpaired surrogate in case ${JSON.stringify(c.text)}`);
}

// --- encode and compare -----------------------------------------------------
const out = [];
const disagreements = [];
const seenTexts = new Set();
for (const c of cases) {
  if (seenTexts.has(c.text)) continue;
  seenTexts.add(c.text);
  let a, b;
  try { a = encTik(c.text); } catch (e) { a = `error: ${e.message}`; }
  try { b = encG3(c.text); } catch (e) { b = `error: ${e.message}`; }
  const same = Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => x === b[i]);
  if (!same) {
    disagreements.push(c);
    process.stderr.write(`DISAGREE ${JSON.stringify(c.text.length > 80 ? c.text.slice(0, 80) + "…" : c.text)}\n` +
                         `  js-tiktoken:   ${JSON.stringify(a)}\n  gpt-3-encoder: ${JSON.stringify(b)}\n`);
    continue;
  }
  const back = tiktoken.decode(a);
  if (back !== c.text) {
    disagreements.push(c);
    process.stderr.write(`ROUNDTRIP FAIL ${JSON.stringify(c.text)}\n`);
    continue;
  }
  out.push(c.note ? { text: c.text, ids: a, note: c.note } : { text: c.text, ids: a });
}

// Pretty-print with one case per line. JSON.stringify escapes control
// characters (\n, \t, \r, \u0000...) and writes other characters as raw UTF-8.
const body = out.map((c) => "    " + JSON.stringify(c)).join(",\n");
const json = `{\n  "source": ${JSON.stringify(source)},\n  "cases": [\n${body}\n  ]\n}\n`;
JSON.parse(json); // self-check
fs.mkdirSync(path.dirname(outPath), { recursive: true });
fs.writeFileSync(outPath, json);

process.stderr.write(`${source}\nwrote ${out.length} cases to ${outPath}; ${disagreements.length} left out\n`);
process.exit(disagreements.length ? 1 : 0);
