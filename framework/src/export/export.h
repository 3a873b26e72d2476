// `lmrun export`: a trained model written for other tools, into a folder made atomically (a
// temporary folder, renamed into place once everything in it has been read back and checked).
//
//   safetensors  OUT/model.safetensors, OUT/config.json, OUT/tokenizer/ (+ tokenizer.json when the
//                tokenizer saves one), OUT/config.toml: a Hugging Face model folder when the
//                model has the "gpt2" layout, lmrun's own names otherwise
//   nanogpt      OUT/ckpt.pt as nanoGPT's train.py saves it (model, model_args, iter_num,
//                best_val_loss, config), and OUT/meta.pkl for a tokenizer of single characters
//   onnx         OUT/model.onnx (and decode.onnx for a model that decodes) from the model plugin's
//                export_onnx, checked by the ONNX project's checker and shape inference
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "export/prune.h"
#include "lmrun/model.h"
#include "lmrun/tokenizer.h"

namespace lmrun::host {

// The ONNX opset lmrun asks model plugins for.
inline constexpr std::int64_t kOnnxOpset = 17;

struct ExportRequest {
  std::string format;  // "safetensors", "nanogpt" or "onnx"
  std::string layout;  // safetensors: "lmrun", "gpt2", or empty (gpt2 when the model has it)
  std::string dtype = "fp32";  // safetensors: fp32, bf16 or fp16
  std::filesystem::path out;   // the folder to create
  bool force = false;          // replace an existing OUT
  double prune = 0.0;          // zero this fraction of each linear layer's weights first
  PruneMode prune_mode = PruneMode::kUnstructured;
  std::string quantize;  // onnx: "int8", the model's quantized weights (Model::quantize)
};

struct ExportSource {
  Model& model;  // the trained model, weights loaded (pruned in place with --prune)
  // A model built as `model` was, with fresh weights: the read-back loads the written file into it.
  std::function<std::shared_ptr<Model>()> fresh_model;
  const Tokenizer& tokenizer;
  std::filesystem::path checkpoint;  // its folder: tokenizer/, config.toml, state.toml
  std::string model_type;            // the [model] type
  std::string name;                  // the experiment's name (nanoGPT's config.dataset)
  std::int64_t sequence_length = 0;  // the probe's length for the read-back's forward pass
};

struct ExportResult {
  std::string layout;              // the layout written
  std::vector<std::string> lines;  // what was written and checked, for the terminal
};

// Throws lmrun::Error before writing anything for an unknown format or dtype, a layout the model
// lacks or cannot take (naming why), OUT's parent missing, or OUT existing without force; and,
// having removed its temporary folder, for a read-back that disagrees with the model.
ExportResult export_model(const ExportSource& source, const ExportRequest& request);

}  // namespace lmrun::host
