// Reads a .safetensors file with Hugging Face's own JavaScript library,
// @huggingface/hub (pinned: @huggingface/hub@2.17.5), so that our C++ writer is
// checked by a real reader we did not write.
//
// How to run (the package is resolved from the *current directory's*
// node_modules, not from next to this script):
//
//   mkdir -p /tmp/hfhub && cd /tmp/hfhub && npm init -y >/dev/null &&
//   npm install @huggingface/hub@2.17.5 &&
//   node /path/to/tests/interop/read_safetensors.mjs FILE.safetensors
//
// stdout: one JSON object
//   {"library": "@huggingface/hub", "version": "...",
//    "tensors": {NAME: {"dtype", "shape", "data_offsets"}},   <- their parse
//    "parameter_count": {DTYPE: N}, ["parameter_total": N,]    <- their count
//    "metadata": {...} | null,                                 <- their parse
//    "first_values": {NAME: [up to 4 floats]}}                 <- OUR read (F32 only)
// Exit status 1 (message on stderr) if the library throws, e.g. on a corrupt file;
// 2 if the library accepted the header but our own check finds a tensor's bytes
// missing from the file (the library compares data_offsets with the whole file
// size, not with what follows the header, so it misses small truncations).
//
// How the library is made to read a local file: parseSafetensorsMetadata() only
// talks to the Hub through the `fetch` it is given. We pass a fetch that answers
// from the local file the way the Hub's /resolve/ endpoint does: GET with
// `Range: bytes=a-b` -> 206 + Content-Range/Content-Length/ETag, no Range -> 200,
// anything else (config.json, which it looks for to count quantized parameters)
// -> 404 EntryNotFound. No network is used.

import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const require = createRequire(process.cwd() + "/");
const fail = (code, msg) => {
  process.stderr.write(`read_safetensors: ${msg}\n`);
  process.exit(code);
};

const file = process.argv[2];
if (!file) fail(1, "usage: node read_safetensors.mjs FILE.safetensors");
let fd;
try {
  fd = fs.openSync(path.resolve(file), "r");
} catch (err) {
  fail(1, err.message);
}
const size = fs.fstatSync(fd).size;
const readBytes = (start, len) => {
  const buf = Buffer.alloc(len);
  const n = fs.readSync(fd, buf, 0, len, start);
  return buf.subarray(0, n);
};

let parseSafetensorsMetadata, version;
try {
  ({ parseSafetensorsMetadata } = require("@huggingface/hub"));
  version = JSON.parse(
    fs.readFileSync(path.join(process.cwd(), "node_modules/@huggingface/hub/package.json"), "utf8"),
  ).version;
} catch (err) {
  fail(1, `@huggingface/hub not found under ${process.cwd()}/node_modules (see "How to run"): ${err.message}`);
}

// --- local stand-in for the Hub's file endpoint ------------------------------
const HUB = "http://local.invalid"; // never contacted: all requests go to localFetch
const REPO = "local/file";
const PATH = "model.safetensors"; // must match the library's /\.safetensors$/
const FILE_URL = `${HUB}/${REPO}/resolve/main/${PATH}`;
const ETAG = `"local-${size}"`;

async function localFetch(input, init = {}) {
  const url = String(input instanceof Request ? input.url : input);
  const method = (init.method ?? "GET").toUpperCase();
  if (url !== FILE_URL || (method !== "GET" && method !== "HEAD")) {
    return new Response("not found", { status: 404, headers: { "X-Error-Code": "EntryNotFound" } });
  }
  const common = { ETag: ETAG, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream" };
  const range = new Headers(init.headers).get("range");
  if (!range) {
    const body = method === "HEAD" ? null : readBytes(0, size);
    return new Response(body, { status: 200, headers: { ...common, "Content-Length": String(size) } });
  }
  const m = /^bytes=(\d+)-(\d*)$/.exec(range);
  if (!m) throw new Error(`unexpected Range header from the library: ${range}`);
  const start = Number(m[1]);
  const end = Math.min(m[2] === "" ? size - 1 : Number(m[2]), size - 1); // clamp like a real server
  if (start >= size || end < start) {
    return new Response(null, { status: 416, headers: { ...common, "Content-Range": `bytes */${size}` } });
  }
  const body = method === "HEAD" ? null : readBytes(start, end - start + 1);
  return new Response(body, {
    status: 206,
    headers: { ...common, "Content-Range": `bytes ${start}-${end}/${size}`, "Content-Length": String(end - start + 1) },
  });
}

// --- their parse ---------------------------------------------------------------
let parsed;
try {
  parsed = await parseSafetensorsMetadata({
    repo: REPO,
    path: PATH,
    hubUrl: HUB,
    fetch: localFetch,
    computeParametersCount: true,
  });
} catch (err) {
  fail(1, `@huggingface/hub@${version} rejected ${file}: ${err?.message ?? err}`);
}

const { __metadata__: metadata, ...tensors } = parsed.header;
const out = {
  library: "@huggingface/hub",
  version,
  tensors: Object.fromEntries(
    Object.entries(tensors).map(([k, v]) => [k, { dtype: v.dtype, shape: v.shape, data_offsets: v.data_offsets }]),
  ),
  parameter_count: parsed.parameterCount ?? null,
  ...(parsed.parameterTotal !== undefined && { parameter_total: parsed.parameterTotal }),
  metadata: metadata ?? null,
};

// --- our read (not the library's): bounds check, first F32 values -------------
const dataStart = 8 + Number(readBytes(0, 8).readBigUInt64LE(0));
for (const [name, { data_offsets: [, e] }] of Object.entries(tensors)) {
  if (dataStart + e > size) fail(2, `tensor "${name}" ends at byte ${dataStart + e} but the file has ${size} bytes`);
}
out.first_values = {};
for (const [name, { dtype, data_offsets: [b, e] }] of Object.entries(tensors)) {
  if (dtype !== "F32") continue;
  const bytes = readBytes(dataStart + b, Math.min(16, e - b));
  out.first_values[name] = Array.from({ length: bytes.length >> 2 }, (_, i) => bytes.readFloatLE(4 * i));
}

process.stdout.write(JSON.stringify(out) + "\n");
