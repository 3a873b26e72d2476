// Runs a text classifier's exported ONNX graph (lmrun's rnn_classifier) in ONNX Runtime (the
// onnxruntime-node package from npm), the real reader the ONNX tests compare lmrun's logits with.
//
//   cd build/interop && node tests/interop/run_onnx_classifier.mjs OUT_DIR '[[5, 9, 2], [7, 0, 0]]'
//       '[[1, 1, 1], [1, 0, 0]]' [disabled|basic|extended|all]
//
// The package resolves from the current directory's node_modules (scripts/test.sh installs it
// there). The rows of ids and of the mask (1 at real tokens, 0 at padding) are equally long.
// Prints the logits of OUT_DIR/model.onnx as JSON: one row of class scores per text.
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(process.cwd() + "/");
const ort = require("onnxruntime-node");

const [dir, idsJson, maskJson, levelArg] = process.argv.slice(2);
const ids = JSON.parse(idsJson);
const mask = JSON.parse(maskJson);
// ONNX Runtime's graph optimizations (default "all"); "disabled" runs the graph as written.
const options = { graphOptimizationLevel: levelArg ?? "all" };

const int64 = (rows) =>
  new ort.Tensor("int64", BigInt64Array.from(rows.flat().map(BigInt)), [
    rows.length,
    rows[0].length,
  ]);

const model = await ort.InferenceSession.create(path.join(dir, "model.onnx"), options);
const out = await model.run({ input_ids: int64(ids), attention_mask: int64(mask) });
const logits = out.logits;
const [b, c] = logits.dims;
const rows = [];
for (let i = 0; i < b; ++i) rows.push(Array.from(logits.data.subarray(i * c, (i + 1) * c)));
process.stdout.write(JSON.stringify(rows) + "\n");
