#include "export/export.h"

#include <unistd.h>

#include <cmath>
#include <limits>
#include <map>
#include <utility>

#include <ATen/ops/arange.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/ones.h>
#include <toml++/toml.h>
#include <torch/utils.h>
#include <nlohmann/json.hpp>

#include "export/onnx_check.h"
#include "export/safetensors.h"
#include "export/torch_file.h"
#include "export/weights.h"
#include "lmrun/error.h"
#include "lmrun/util/files.h"
#include "lmrun/version.h"
#include "util/fs.h"

namespace fs = std::filesystem;

namespace lmrun::host {
namespace {

c10::ScalarType float_type(const std::string& dtype) {
  if (dtype == "fp32") return at::kFloat;
  if (dtype == "bf16") return at::kBFloat16;
  if (dtype == "fp16") return at::kHalf;
  throw Error("--dtype must be fp32, bf16 or fp16, not '" + dtype + "'");
}

std::string layouts_text(const std::vector<WeightLayout>& layouts) {
  std::string out;
  for (const WeightLayout& l : layouts) out += (out.empty() ? "" : ", ") + l.name;
  return out.empty() ? "none" : out;
}

// The layout to write, checked against what the model offers.
std::string choose_layout(Model& model, const std::string& model_type, const ExportRequest& request,
                          std::vector<std::string>& lines) {
  const std::vector<WeightLayout> layouts = model.weight_layouts();
  auto find = [&](const std::string& name) -> const WeightLayout* {
    for (const WeightLayout& l : layouts)
      if (l.name == name) return &l;
    return nullptr;
  };
  auto require = [&](const std::string& name) {
    const WeightLayout* layout = find(name);
    if (layout == nullptr) {
      throw Error("model '" + model_type + "' cannot be written as " + name +
                      " (its layouts: " + layouts_text(layouts) + ")",
                  request.format == "nanogpt"
                      ? "nanoGPT reads GPT decoders: export this model as safetensors instead"
                      : "use --layout lmrun, the model's own names");
    }
    if (!layout->mismatch.empty()) {
      throw Error(
          "model '" + model_type + "' cannot be written as " + name + ": " + layout->mismatch,
          request.format == "nanogpt" ? "export it as safetensors instead"
                                      : "use --layout lmrun, the model's own names");
    }
    return name;
  };
  if (request.format == "nanogpt") {
    if (!request.layout.empty() && request.layout != "nanogpt")
      throw Error("--layout " + request.layout + " does not apply to --format nanogpt");
    return require("nanogpt");
  }
  if (request.layout == kOwnLayout) return kOwnLayout;
  if (!request.layout.empty()) return require(request.layout);
  const WeightLayout* gpt2 = find("gpt2");
  if (gpt2 != nullptr && gpt2->mismatch.empty()) return "gpt2";
  lines.push_back(gpt2 != nullptr
                      ? "note: not GPT-2's architecture (" + gpt2->mismatch +
                            "): written under lmrun's own names"
                      : "note: model '" + model_type +
                            "' has no Hugging Face layout: written under lmrun's own names");
  return kOwnLayout;
}

std::vector<NamedTensor> own_tensors(Model& model) {
  std::vector<NamedTensor> out;
  for (const auto& item : model.module().named_parameters(true))
    out.push_back({item.key(), item.value().detach().to(at::kCPU)});
  for (const auto& item : model.module().named_buffers(true))
    out.push_back({item.key(), item.value().detach().to(at::kCPU)});
  return out;
}

void copy_tree(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
}

std::int64_t code_points(const std::string& text) {
  std::int64_t n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80;
  return n;
}

// nanoGPT's meta.pkl ({vocab_size, itos, stoi}) when every id is one character; false otherwise.
bool write_meta(const Tokenizer& tokenizer, const fs::path& path) {
  c10::Dict<std::int64_t, std::string> itos;
  c10::Dict<std::string, std::int64_t> stoi;
  for (std::int64_t id = 0; id < tokenizer.vocab_size(); ++id) {
    const std::string text = tokenizer.decode({id});
    if (code_points(text) != 1 || stoi.contains(text)) return false;
    itos.insert(id, text);
    stoi.insert(text, id);
  }
  c10::impl::GenericDict meta(c10::StringType::get(), c10::AnyType::get());
  meta.insert("vocab_size", tokenizer.vocab_size());
  meta.insert("itos", itos);
  meta.insert("stoi", stoi);
  write_pickle(path, meta);
  return true;
}

// Step and val_loss of the checkpoint (state.toml), for nanoGPT's iter_num and best_val_loss.
std::pair<std::int64_t, double> progress_of(const fs::path& checkpoint) {
  try {
    const toml::table state = toml::parse_file((checkpoint / "state.toml").string());
    return {state["step"].value_or(std::int64_t{0}),
            state["metrics"]["val_loss"].value_or(std::numeric_limits<double>::quiet_NaN())};
  } catch (const std::exception&) {
    return {0, std::numeric_limits<double>::quiet_NaN()};
  }
}

// Outputs of `model` on a fixed probe of up to 16 tokens, on the CPU.
at::Tensor probe(Model& model, std::int64_t vocab, std::int64_t length) {
  torch::NoGradGuard no_grad;
  model.module().eval();
  c10::Device device(c10::kCPU);
  for (const auto& p : model.module().parameters()) {
    device = p.device();
    break;
  }
  const std::int64_t t = std::max<std::int64_t>(1, std::min<std::int64_t>(length, 16));
  const at::Tensor tokens =
      (at::arange(t, at::TensorOptions().dtype(at::kLong)) * 7 + 3).remainder(vocab).unsqueeze(0);
  const at::Tensor mask = at::ones({1, t}, at::TensorOptions().dtype(at::kBool));
  return model.forward(tokens.to(device), mask.to(device)).to(at::kCPU).to(at::kFloat);
}

// Reads what was written back into a fresh model and compares its outputs with the source's.
std::string read_back(const ExportSource& source, const fs::path& written, bool exact) {
  const WeightsSource weights = read_weights(written);
  std::shared_ptr<Model> fresh = source.fresh_model();
  const InitReport report = load_weights(*fresh, weights, /*strict=*/true);
  const std::int64_t vocab = std::max<std::int64_t>(1, source.tokenizer.vocab_size());
  const at::Tensor want = probe(source.model, vocab, source.sequence_length);
  const at::Tensor got = probe(*fresh, vocab, source.sequence_length);
  if (!got.sizes().equals(want.sizes())) throw Error("export read-back: outputs differ in shape");
  const double diff = (got - want).abs().max().item<double>();
  if (exact ? !at::equal(got, want) : !std::isfinite(diff)) {
    throw Error("export read-back: the written weights give outputs " + std::to_string(diff) +
                    " away from the model's",
                "this is a bug in lmrun's export; please report it with the run's config.toml");
  }
  return "read back: " + std::to_string(report.loaded) + " tensors, " +
         (exact ? std::string("outputs identical to the model's")
                : "outputs within " + std::to_string(diff) + " of the model's (rounding)");
}

}  // namespace

ExportResult export_model(const ExportSource& source, const ExportRequest& request) {
  if (request.format != "safetensors" && request.format != "nanogpt" && request.format != "onnx") {
    throw Error("--format must be safetensors, nanogpt or onnx, not '" + request.format + "'");
  }
  const c10::ScalarType dtype = float_type(request.dtype);
  if (request.format != "safetensors" && request.dtype != "fp32")
    throw Error("--dtype applies to safetensors; " + request.format + " is written in fp32");
  ExportResult result;
  if (request.prune != 0.0) {
    const PruneReport pruned =
        prune_linear_weights(source.model.module(), request.prune, request.prune_mode);
    result.lines.push_back("pruned " + std::to_string(pruned.layers.size()) + " linear layers (" +
                           (request.prune_mode == PruneMode::kRows ? "per row" : "unstructured") +
                           "): " + std::to_string(pruned.zeros) + " of their " +
                           std::to_string(pruned.weights) + " weights are zero");
  }
  if (!request.quantize.empty()) {
    if (request.format != "onnx") {
      throw Error("--quantize applies to --format onnx (INT8 initializers with DequantizeLinear)",
                  "safetensors and nanoGPT's ckpt.pt have no INT8 layout their readers share");
    }
    source.model.module().eval();
    result.lines.push_back("quantized " + source.model.quantize(request.quantize));
  }
  std::vector<OnnxGraph> graphs;
  if (request.format == "onnx") {
    if (!request.layout.empty()) throw Error("--layout does not apply to --format onnx");
    graphs = source.model.export_onnx(kOnnxOpset);
    if (graphs.empty()) {
      throw Error("model '" + source.model_type + "' has no ONNX export",
                  "export it as safetensors instead");
    }
    result.layout = "onnx";
  } else {
    result.layout = choose_layout(source.model, source.model_type, request, result.lines);
  }

  const fs::path out = fs::absolute(request.out).lexically_normal();
  const fs::path parent = out.parent_path();
  if (!fs::is_directory(parent)) {
    throw Error(
        "cannot export to " + out.string() + ": the folder " + parent.string() + " does not exist",
        "create it first, or choose another -o");
  }
  if (fs::exists(out) && !request.force) {
    throw Error(out.string() + " already exists",
                "pass --force to replace it, or choose another -o");
  }
  const fs::path temp =
      parent / (".tmp-" + out.filename().string() + "-" + std::to_string(::getpid()));
  std::error_code ec;
  fs::remove_all(temp, ec);
  fs::create_directories(temp);
  try {
    fs::path written;
    bool exact = true;
    if (request.format == "safetensors") {
      std::vector<NamedTensor> tensors;
      nlohmann::ordered_json config;
      if (result.layout == kOwnLayout) {
        tensors = own_tensors(source.model);
        config["model_type"] = "lmrun";
        config["lmrun_model"] = source.model_type;
        config["vocab_size"] = source.tokenizer.vocab_size();
      } else {
        ExternalWeights external = source.model.export_weights(result.layout);
        tensors = std::move(external.tensors);
        config = nlohmann::ordered_json::parse(external.config_json);
      }
      config["torch_dtype"] = request.dtype == "fp32"   ? "float32"
                              : request.dtype == "bf16" ? "bfloat16"
                                                        : "float16";
      config["lmrun_version"] = kVersion;
      written = temp / "model.safetensors";
      write_safetensors(
          written, tensors,
          {{"format", "pt"}, {"lmrun.layout", result.layout}, {"lmrun.version", kVersion}}, dtype);
      write_file_atomic(temp / "config.json", config.dump(2) + "\n");
      copy_tree(source.checkpoint / "tokenizer", temp / "tokenizer");
      if (fs::is_regular_file(temp / "tokenizer" / "tokenizer.json"))
        fs::copy_file(temp / "tokenizer" / "tokenizer.json", temp / "tokenizer.json");
      fs::copy_file(source.checkpoint / "config.toml", temp / "config.toml");
      exact = request.dtype == "fp32";
      result.lines.push_back("wrote model.safetensors (" + std::to_string(tensors.size()) +
                             " tensors, " + request.dtype + ", layout " + result.layout +
                             "), config.json, tokenizer/, config.toml");
    } else if (request.format == "onnx") {
      for (const OnnxGraph& graph : graphs) {
        const fs::path file = temp / (graph.name + ".onnx");
        write_file_atomic(file, graph.model_proto);
        const OnnxSummary summary = check_onnx(file);
        std::string inputs, outputs;
        for (const auto& name : summary.inputs) inputs += (inputs.empty() ? "" : ", ") + name;
        for (const auto& name : summary.outputs) outputs += (outputs.empty() ? "" : ", ") + name;
        if (summary.inputs.size() > 4)
          inputs =
              summary.inputs[0] + ", ... (" + std::to_string(summary.inputs.size()) + " inputs)";
        if (summary.outputs.size() > 4)
          outputs =
              summary.outputs[0] + ", ... (" + std::to_string(summary.outputs.size()) + " outputs)";
        result.lines.push_back(
            "wrote " + graph.name + ".onnx (opset " + std::to_string(summary.opset) + ", " +
            std::to_string(summary.nodes) + " nodes, " + std::to_string(summary.initializers) +
            " initializers: " + inputs + " -> " + outputs +
            "), checked by onnx::checker and its shape "
            "inference");
      }
      copy_tree(source.checkpoint / "tokenizer", temp / "tokenizer");
      fs::copy_file(source.checkpoint / "config.toml", temp / "config.toml");
    } else {
      ExternalWeights external = source.model.export_weights("nanogpt");
      const auto [step, val_loss] = progress_of(source.checkpoint);
      c10::impl::GenericDict config(c10::StringType::get(), c10::AnyType::get());
      config.insert("dataset", source.name);
      config.insert("lmrun_version", std::string(kVersion));
      c10::impl::GenericDict checkpoint(c10::StringType::get(), c10::AnyType::get());
      checkpoint.insert("model", state_dict(external.tensors));
      checkpoint.insert("model_args", ivalue_from_json(external.config_json));
      checkpoint.insert("iter_num", step);
      checkpoint.insert("best_val_loss", val_loss);
      checkpoint.insert("config", config);
      written = temp / "ckpt.pt";
      write_torch_file(written, checkpoint);
      result.lines.push_back("wrote ckpt.pt (" + std::to_string(external.tensors.size()) +
                             " state-dict entries, model_args, iter_num " + std::to_string(step) +
                             ")");
      if (write_meta(source.tokenizer, temp / "meta.pkl")) {
        result.lines.push_back(
            "wrote meta.pkl (the characters): nanoGPT's sample.py reads it from "
            "data/" +
            source.name + "/meta.pkl");
      } else {
        result.lines.push_back(
            "note: the tokenizer's tokens are not single characters, so no "
            "meta.pkl: nanoGPT's sample.py will encode with GPT-2's BPE");
      }
    }
    if (!written.empty()) result.lines.push_back(read_back(source, written, exact));
    // Every file reaches the disk before the folder takes its name.
    for (const auto& entry : fs::recursive_directory_iterator(temp)) {
      if (entry.is_regular_file()) fsync_file(entry.path());
    }
    if (fs::exists(out)) {
      const fs::path old =
          parent / (".old-" + out.filename().string() + "-" + std::to_string(::getpid()));
      fs::rename(out, old);
      fs::rename(temp, out);
      fs::remove_all(old, ec);
    } else {
      fs::rename(temp, out);
    }
  } catch (...) {
    fs::remove_all(temp, ec);
    throw;
  }
  result.lines.push_back("exported to " + out.string());
  return result;
}

}  // namespace lmrun::host
