// Runs lmrun's exported ONNX graphs in ONNX Runtime (the onnxruntime-node package from npm), the
// real reader the interchange tests compare lmrun's logits with.
//
//   cd build/interop && node tests/interop/run_onnx.mjs OUT_DIR '[18, 47, 56]' [prompt_length]
//       [disabled|basic|extended|all]
//
// The package resolves from the current directory's node_modules (scripts/test.sh installs it
// there with --ignore-scripts: its install script fetches optional CUDA binaries; the CPU ones
// ship in the package). Prints one JSON object: "model", the logits of model.onnx for every
// position of the tokens (rows), and, when OUT_DIR has decode.onnx, "decode", the logits the
// decode graph gives when it is fed the first prompt_length tokens (default 1) from an empty
// state and then one token at a time, its state outputs fed back as inputs.
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const require = createRequire(process.cwd() + "/");
const ort = require("onnxruntime-node");

const [dir, tokensJson, promptArg, levelArg] = process.argv.slice(2);
const tokens = JSON.parse(tokensJson);
const prompt = Number(promptArg ?? 1);
// ONNX Runtime's graph optimizations (default "all"); "disabled" runs the graph as written.
const options = { graphOptimizationLevel: levelArg ?? "all" };

const ids = (list) =>
  new ort.Tensor("int64", BigInt64Array.from(list.map(BigInt)), [1, list.length]);
// (1, T, V) -> T rows of V numbers.
const rows = (tensor) => {
  const [, t, v] = tensor.dims;
  const out = [];
  for (let i = 0; i < t; ++i) out.push(Array.from(tensor.data.subarray(i * v, (i + 1) * v)));
  return out;
};

const result = {};
const model = await ort.InferenceSession.create(path.join(dir, "model.onnx"), options);
const out = await model.run({ input_ids: ids(tokens) });
result.model = rows(out[model.outputNames[0]]);

// decode.onnx carries state: each input but input_ids is a state tensor, fed back from the output
// of the same name with "past_" read as "present_" (a transformer's KV cache) or "state_" as
// "next_state_" (a recurrent model's). It starts empty: "batch" is 1, "past" 0, other dims fixed.
const decodePath = path.join(dir, "decode.onnx");
if (fs.existsSync(decodePath)) {
  const decode = await ort.InferenceSession.create(decodePath, options);
  const stateNames = decode.inputNames.filter((n) => n !== "input_ids");
  const outputOf = (name) =>
    name.startsWith("past_") ? "present_" + name.slice(5) : "next_" + name;
  let state = {};
  for (const name of stateNames) {
    const meta = decode.inputMetadata.find((m) => m.name === name);
    const dims = meta.shape.map((d) => (d === "batch" ? 1 : d === "past" ? 0 : d));
    if (!dims.every(Number.isInteger)) throw new Error(`${name}: unexpected shape ${meta.shape}`);
    state[name] = new ort.Tensor("float32", new Float32Array(dims.reduce((a, b) => a * b, 1)), dims);
  }
  result.decode = [];
  for (let start = 0; start < tokens.length; ) {
    const end = start === 0 ? Math.min(prompt, tokens.length) : start + 1;
    const step = await decode.run({ input_ids: ids(tokens.slice(start, end)), ...state });
    result.decode.push(...rows(step[decode.outputNames[0]]));
    const next = {};
    for (const name of stateNames) next[name] = step[outputOf(name)];
    state = next;
    start = end;
  }
}
process.stdout.write(JSON.stringify(result) + "\n");
