#include "interchange.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include <ATen/ops/equal.h>
#include <nlohmann/json.hpp>

#include "lmrun/error.h"

namespace lmrun::models {
namespace {

constexpr const char* kGpt2 = "gpt2";
constexpr const char* kNanoGpt = "nanogpt";

// One module of a block under both names; `linear`: a weight Conv1D stores transposed.
struct Part {
  const char* own;
  const char* external;
  bool linear;
};
constexpr Part kBlockParts[] = {
    {"ln_1.", "ln_1.", false},
    {"attn.qkv.", "attn.c_attn.", true},
    {"attn.proj.", "attn.c_proj.", true},
    {"ln_2.", "ln_2.", false},
    {"mlp.fc.", "mlp.c_fc.", true},
    {"mlp.proj.", "mlp.c_proj.", true},
};
// Outside the blocks: own prefix, external prefix (under "transformer." but the head).
constexpr std::pair<const char*, const char*> kTopParts[] = {
    {"wte.", "transformer.wte."},
    {"wpe.", "transformer.wpe."},
    {"ln_f.", "transformer.ln_f."},
    {"lm_head.", "lm_head."},
};

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}
bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

struct Renamed {
  std::string name;
  bool transpose = false;  // a linear's weight, in the Conv1D layout
};

// "blocks.3.rest" -> (3, "rest"); nothing for other names.
std::optional<std::pair<std::string, std::string>> split_index(const std::string& name,
                                                               const std::string& prefix) {
  if (!starts_with(name, prefix)) return std::nullopt;
  const std::size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size()) return std::nullopt;
  const std::string index = name.substr(prefix.size(), dot - prefix.size());
  if (index.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return std::make_pair(index, name.substr(dot + 1));
}

std::optional<Renamed> to_external(const std::string& own, bool conv1d) {
  if (auto block = split_index(own, "blocks.")) {
    for (const Part& part : kBlockParts) {
      if (!starts_with(block->second, part.own)) continue;
      const std::string rest = block->second.substr(std::string(part.own).size());
      return Renamed{"transformer.h." + block->first + "." + part.external + rest,
                     conv1d && part.linear && rest == "weight"};
    }
    return std::nullopt;
  }
  for (const auto& [mine, theirs] : kTopParts) {
    if (starts_with(own, mine)) return Renamed{theirs + own.substr(std::string(mine).size())};
  }
  return std::nullopt;
}

std::optional<Renamed> from_external(std::string name, bool conv1d) {
  if (starts_with(name, "transformer.")) name = name.substr(std::string("transformer.").size());
  if (auto block = split_index(name, "h.")) {
    for (const Part& part : kBlockParts) {
      if (!starts_with(block->second, part.external)) continue;
      const std::string rest = block->second.substr(std::string(part.external).size());
      return Renamed{"blocks." + block->first + "." + part.own + rest,
                     conv1d && part.linear && rest == "weight"};
    }
    return std::nullopt;
  }
  for (const auto& [mine, theirs] : kTopParts) {
    const std::string external =
        starts_with(theirs, "transformer.")
            ? std::string(theirs).substr(std::string("transformer.").size())
            : std::string(theirs);
    if (starts_with(name, external)) return Renamed{mine + name.substr(external.size())};
  }
  return std::nullopt;
}

// The causal-mask buffers older Hugging Face and nanoGPT (without flash attention) files hold.
bool is_mask_buffer(const std::string& name) {
  return ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias");
}

std::string gpt2_mismatch(const GptConfig& c) {
  if (c.vector_output) return "the model outputs vectors (an embedding objective); GPT-2 logits";
  if (c.norm != NormKind::kLayerNorm) return "norm = rmsnorm; GPT-2 has LayerNorm";
  if (c.positions != PositionKind::kLearned) return "positions = sinusoidal; GPT-2 learns them";
  if (!c.bias) return "bias = false; GPT-2's linears and norms have biases";
  return {};
}

std::string nanogpt_mismatch(const GptConfig& c) {
  if (c.vector_output) return "the model outputs vectors (an embedding objective); nanoGPT logits";
  if (c.norm != NormKind::kLayerNorm) return "norm = rmsnorm; nanoGPT has LayerNorm";
  if (c.positions != PositionKind::kLearned) return "positions = sinusoidal; nanoGPT learns them";
  if (!c.tie_weights) return "tie_weights = false; nanoGPT ties its head to wte";
  if (c.gelu != GeluKind::kExact) return "gelu = tanh; nanoGPT's nn.GELU() is the exact one";
  return {};
}

std::string config_json(const GptConfig& c, const std::string& layout) {
  nlohmann::ordered_json j;
  if (layout == kGpt2) {
    j["architectures"] = {"GPT2LMHeadModel"};
    j["model_type"] = "gpt2";
    j["vocab_size"] = c.vocab_size;
    j["n_positions"] = c.block_size;
    j["n_ctx"] = c.block_size;
    j["n_embd"] = c.n_embd;
    j["n_layer"] = c.n_layer;
    j["n_head"] = c.n_head;
    j["n_inner"] = nullptr;  // 4 n_embd
    j["activation_function"] = c.gelu == GeluKind::kTanh ? "gelu_new" : "gelu";
    j["resid_pdrop"] = c.dropout;
    j["embd_pdrop"] = c.dropout;
    j["attn_pdrop"] = c.dropout;
    j["layer_norm_epsilon"] = 1e-5;
    j["initializer_range"] = 0.02;
    j["scale_attn_weights"] = true;
    j["tie_word_embeddings"] = c.tie_weights;
  } else {
    j["n_layer"] = c.n_layer;
    j["n_head"] = c.n_head;
    j["n_embd"] = c.n_embd;
    j["block_size"] = c.block_size;
    j["bias"] = c.bias;
    j["vocab_size"] = c.vocab_size;
    j["dropout"] = c.dropout;
  }
  return j.dump();
}

}  // namespace

std::vector<WeightLayout> gpt_layouts(const GptConfig& config) {
  return {{kGpt2, gpt2_mismatch(config)}, {kNanoGpt, nanogpt_mismatch(config)}};
}

ExternalWeights gpt_export(const GptImpl& gpt, const std::string& layout) {
  const GptConfig& c = gpt.config();
  std::string mismatch;
  if (layout == kGpt2) {
    mismatch = gpt2_mismatch(c);
  } else if (layout == kNanoGpt) {
    mismatch = nanogpt_mismatch(c);
  } else {
    throw Error("the transformer has no weight layout '" + layout + "'",
                "its layouts: gpt2 (Hugging Face), nanogpt");
  }
  if (!mismatch.empty()) {
    throw Error("the transformer cannot be written as " + layout + ": " + mismatch,
                "export it under lmrun's own names instead");
  }
  const bool conv1d = layout == kGpt2;
  ExternalWeights out;
  out.config_json = config_json(c, layout);
  for (const auto& item : gpt.named_parameters(/*recurse=*/true)) {
    const std::optional<Renamed> renamed = to_external(item.key(), conv1d);
    if (!renamed) throw Error("transformer: no " + layout + " name for '" + item.key() + "'");
    at::Tensor value = item.value().detach().to(at::kCPU);
    if (renamed->transpose) value = value.t();
    out.tensors.push_back({renamed->name, value.contiguous()});
  }
  if (layout == kNanoGpt) {  // model.py ties lm_head.weight to wte: both names, one tensor
    for (const NamedTensor& t : out.tensors) {
      if (t.name == "transformer.wte.weight") {
        out.tensors.push_back({"lm_head.weight", t.value});
        break;
      }
    }
  }
  return out;
}

std::vector<NamedTensor> gpt_import(const GptConfig& config, const std::string& layout,
                                    std::vector<NamedTensor> tensors) {
  if (layout != kGpt2 && layout != kNanoGpt) {
    throw Error("the transformer has no weight layout '" + layout + "'",
                "its layouts: gpt2 (Hugging Face), nanogpt");
  }
  const bool conv1d = layout == kGpt2;
  at::Tensor embedding;
  for (const NamedTensor& t : tensors) {
    if (t.name == "transformer.wte.weight" || t.name == "wte.weight") embedding = t.value;
  }
  std::vector<NamedTensor> out;
  for (NamedTensor& t : tensors) {
    if (is_mask_buffer(t.name)) continue;
    if (t.name == "lm_head.weight" && config.tie_weights && embedding.defined() &&
        embedding.sizes() == t.value.sizes() && at::equal(embedding, t.value)) {
      continue;  // the tied head's second name
    }
    const std::optional<Renamed> renamed = from_external(t.name, conv1d);
    if (!renamed) {
      out.push_back(std::move(t));
      continue;
    }
    at::Tensor value = t.value;
    if (renamed->transpose && value.dim() == 2) value = value.t().contiguous();
    out.push_back({renamed->name, value});
  }
  return out;
}

}  // namespace lmrun::models
