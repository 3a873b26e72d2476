#include "onnx_export.h"

#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <utility>

#include <ATen/ops/full.h>
#include <ATen/ops/ones.h>

#include "lmrun/error.h"
#include "lmrun/util/onnx_graph.h"

namespace lmrun::models {
namespace {

constexpr float kNormEps = 1e-5f;

class GptGraph {
 public:
  GptGraph(const GptImpl& gpt, OnnxGraphBuilder& g) : gpt_(gpt), c_(gpt.config()), g_(g) {
    for (const auto& item : gpt.named_parameters(true)) params_[item.key()] = item.value();
  }

  // Builds the graph. decode: past keys and values in, present ones out.
  void build(bool decode) {
    const std::int64_t C = c_.n_embd, H = c_.n_head, D = C / H;
    g_.value(true, "input_ids", true, {"batch", decode ? "new" : "sequence"});
    const std::string ids = "input_ids";
    // Shapes: batch B and new length T from the ids, past length P from the first past key.
    const std::string ids_shape = g_.op("Shape", {ids});
    const std::string zero = g_.ints("zero", {0}), one = g_.ints("one", {1}),
                      two = g_.ints("two", {2});
    const std::string batch = g_.op("Gather", {ids_shape, zero}, {onnx_int("axis", 0)});
    const std::string length = g_.op("Gather", {ids_shape, one}, {onnx_int("axis", 0)});
    std::string past = g_.ints("no_past", {0});
    if (decode) {
      for (std::int64_t i = 0; i < c_.n_layer; ++i) {
        g_.value(true, "past_key_" + std::to_string(i), false,
                 {"batch", std::to_string(H), "past", std::to_string(D)});
        g_.value(true, "past_value_" + std::to_string(i), false,
                 {"batch", std::to_string(H), "past", std::to_string(D)});
      }
      past = g_.op("Gather", {g_.op("Shape", {"past_key_0"}), two}, {onnx_int("axis", 0)});
    }
    const std::string total = g_.op("Add", {past, length});

    // Embeddings: tokens plus positions [past, past + T).
    const std::string wte = g_.constant("wte.weight", params_.at("wte.weight"));
    const std::string positions_table = g_.constant("positions", gpt_.position_table());
    const std::string pos =
        g_.op("Range", {g_.op("Squeeze", {past, zero}), g_.op("Squeeze", {total, zero}),
                        g_.constant("step", at::ones({}, at::kLong))});
    std::string x = g_.op("Add", {g_.op("Gather", {wte, ids}, {onnx_int("axis", 0)}),
                                  g_.op("Gather", {positions_table, pos}, {onnx_int("axis", 0)})});

    // The causal bias: rows [past, past + T) and columns [0, past + T) of -inf above the diagonal.
    const std::int64_t P = c_.block_size;
    at::Tensor future = at::zeros({P, P}, at::kFloat)
                            .masked_fill_(at::ones({P, P}, at::kBool).triu(1),
                                          -std::numeric_limits<float>::infinity());
    const std::string bias = g_.op(
        "Slice",
        {g_.constant("future_bias", future), g_.op("Concat", {past, zero}, {onnx_int("axis", 0)}),
         g_.op("Concat", {total, total}, {onnx_int("axis", 0)}), g_.ints("axes01", {0, 1})});

    const std::string heads_shape =
        g_.op("Concat",
              {batch, g_.ints("minus_one", {-1}), g_.ints("heads", {H}), g_.ints("head_size", {D})},
              {onnx_int("axis", 0)});
    const std::string merged_shape =
        g_.op("Concat", {batch, g_.ints("minus_one_2", {-1}), g_.ints("width", {C})},
              {onnx_int("axis", 0)});
    const std::string scale =
        g_.scalar("attention_scale", static_cast<float>(1.0 / std::sqrt(static_cast<double>(D))));
    for (std::int64_t i = 0; i < c_.n_layer; ++i) {
      const std::string p = "blocks." + std::to_string(i) + ".";
      const std::string h = norm(x, p + "ln_1");
      const std::string qkv = linear(h, p + "attn.qkv");
      const auto parts =
          g_.node("Split", {qkv, g_.ints(p + "split", {C, C, C})}, 3, {onnx_int("axis", 2)});
      auto split_heads = [&](const std::string& t) {  // (B, T, C) -> (B, H, T, D)
        return g_.op("Transpose", {g_.op("Reshape", {t, heads_shape})},
                     {onnx_ints("perm", {0, 2, 1, 3})});
      };
      const std::string q = split_heads(parts[0]);
      std::string k = split_heads(parts[1]);
      std::string v = split_heads(parts[2]);
      if (decode) {
        const std::string n = std::to_string(i);
        k = g_.node("Concat", {"past_key_" + n, k}, 1, {onnx_int("axis", 2)},
                    {"present_key_" + n})[0];
        v = g_.node("Concat", {"past_value_" + n, v}, 1, {onnx_int("axis", 2)},
                    {"present_value_" + n})[0];
      }
      const std::string scores = g_.op(
          "Add",
          {g_.op("Mul",
                 {g_.op("MatMul", {q, g_.op("Transpose", {k}, {onnx_ints("perm", {0, 1, 3, 2})})}),
                  scale}),
           bias});
      const std::string attended =
          g_.op("MatMul", {g_.op("Softmax", {scores}, {onnx_int("axis", -1)}), v});
      const std::string y =
          g_.op("Reshape",
                {g_.op("Transpose", {attended}, {onnx_ints("perm", {0, 2, 1, 3})}), merged_shape});
      x = g_.op("Add", {x, linear(y, p + "attn.proj")});
      const std::string hidden = gelu(linear(norm(x, p + "ln_2"), p + "mlp.fc"));
      x = g_.op("Add", {x, linear(hidden, p + "mlp.proj")});
    }
    x = norm(x, "ln_f");
    const std::string out_name = c_.vector_output ? "vectors" : "logits";
    if (c_.vector_output) {
      g_.node("Identity", {x}, 1, {}, {out_name});
    } else {
      const at::Tensor head =
          c_.tie_weights ? params_.at("wte.weight") : params_.at("lm_head.weight");
      g_.node("MatMul", {x, g_.constant("head.weight_t", head.t())}, 1, {}, {out_name});
    }
    g_.value(false, out_name, false,
             {"batch", decode ? "new" : "sequence",
              std::to_string(c_.vector_output ? c_.n_embd : c_.vocab_size)});
    if (decode) {
      for (std::int64_t i = 0; i < c_.n_layer; ++i) {
        g_.value(false, "present_key_" + std::to_string(i), false,
                 {"batch", std::to_string(H), "total", std::to_string(D)});
        g_.value(false, "present_value_" + std::to_string(i), false,
                 {"batch", std::to_string(H), "total", std::to_string(D)});
      }
    }
  }

 private:
  // x @ W^T + b for the linear `prefix` (prefix.weight (out, in), prefix.bias when present).
  // With INT8 weights (quantize_int8): the weight as an int8 initializer dequantized per output
  // column by DequantizeLinear, and x quantized per row as the model does it (round half to
  // even, clamp to 127, back to float), so the graph computes what lmrun --quantize int8 does.
  std::string linear(const std::string& x, const std::string& prefix) {
    const Int8Matrix* q = int8_of(prefix);
    if (q != nullptr) {
      const at::Tensor values = at::from_blob(const_cast<std::int8_t*>(q->q.data()),
                                              {q->rows, q->cols}, {q->stride, 1}, at::kChar);
      const at::Tensor scale =
          at::from_blob(const_cast<float*>(q->scale.data()), {q->rows}, at::kFloat);
      const std::string weight =
          g_.op("DequantizeLinear",
                {g_.constant(prefix + ".weight_t_int8", values.t()),
                 g_.constant(prefix + ".weight_scale", scale),
                 g_.constant(prefix + ".weight_zero", at::zeros({q->rows}, at::kChar))},
                {onnx_int("axis", 1)});
      const std::string amax = g_.op("ReduceMax", {g_.op("Abs", {x})},
                                     {onnx_ints("axes", {-1}), onnx_int("keepdims", 1)});
      const std::string s = g_.op("Div", {amax, g_.scalar(prefix + ".q127", 127.0f)});
      const std::string safe =
          g_.op("Where", {g_.op("Greater", {s, g_.scalar(prefix + ".qzero", 0.0f)}), s,
                          g_.scalar(prefix + ".qone", 1.0f)});
      const std::string xq = g_.op("Mul", {g_.op("Clip", {g_.op("Round", {g_.op("Div", {x, safe})}),
                                                          g_.scalar(prefix + ".qmin", -127.0f),
                                                          g_.scalar(prefix + ".qmax", 127.0f)}),
                                           s});
      std::string y = g_.op("MatMul", {xq, weight});
      const auto bias = params_.find(prefix + ".bias");
      if (bias != params_.end()) y = g_.op("Add", {y, g_.constant(prefix + ".bias", bias->second)});
      return y;
    }
    std::string y =
        g_.op("MatMul", {x, g_.constant(prefix + ".weight_t", params_.at(prefix + ".weight").t())});
    const auto bias = params_.find(prefix + ".bias");
    if (bias != params_.end()) y = g_.op("Add", {y, g_.constant(prefix + ".bias", bias->second)});
    return y;
  }

  // The INT8 copy of the linear `prefix` ("blocks.3.mlp.fc"), or null.
  const Int8Matrix* int8_of(const std::string& prefix) const {
    const auto& int8 = gpt_.int8_weights();
    if (int8.empty()) return nullptr;
    const std::size_t dot = prefix.find('.', 7);  // after "blocks."
    const auto block = static_cast<std::size_t>(std::stoll(prefix.substr(7, dot - 7)));
    const std::string part = prefix.substr(dot + 1);
    const std::size_t which = part == "attn.qkv"    ? 0
                              : part == "attn.proj" ? 1
                              : part == "mlp.fc"    ? 2
                                                    : 3;
    return &int8.at(block)[which];
  }

  std::string norm(const std::string& x, const std::string& prefix) {
    const std::string weight = g_.constant(prefix + ".weight", params_.at(prefix + ".weight"));
    if (c_.norm == NormKind::kLayerNorm) {
      const auto bias = params_.find(prefix + ".bias");
      std::vector<std::string> inputs = {x, weight};
      if (bias != params_.end()) inputs.push_back(g_.constant(prefix + ".bias", bias->second));
      return g_.op("LayerNormalization", inputs,
                   {onnx_int("axis", -1), onnx_float("epsilon", kNormEps)});
    }
    // RMSNorm: x / sqrt(mean(x^2) + eps) * weight.
    const std::string mean_square = g_.op("ReduceMean", {g_.op("Mul", {x, x})},
                                          {onnx_ints("axes", {-1}), onnx_int("keepdims", 1)});
    const std::string rms =
        g_.op("Sqrt", {g_.op("Add", {mean_square, g_.scalar(prefix + ".eps", kNormEps)})});
    return g_.op("Mul", {g_.op("Div", {x, rms}), weight});
  }

  std::string gelu(const std::string& x) {
    const std::string half = g_.scalar("half_" + x, 0.5f), one = g_.scalar("one_" + x, 1.0f);
    if (c_.gelu == GeluKind::kExact) {  // x/2 (1 + erf(x / sqrt 2))
      const std::string erf =
          g_.op("Erf", {g_.op("Mul", {x, g_.scalar("rsqrt2_" + x, 0.70710678118654752f)})});
      return g_.op("Mul", {g_.op("Mul", {x, half}), g_.op("Add", {erf, one})});
    }
    // x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    const std::string cube = g_.op("Mul", {g_.op("Mul", {x, x}), x});
    const std::string inner =
        g_.op("Mul", {g_.op("Add", {x, g_.op("Mul", {cube, g_.scalar("k_" + x, 0.044715f)})}),
                      g_.scalar("s_" + x, 0.7978845608028654f)});
    return g_.op("Mul", {g_.op("Mul", {x, half}), g_.op("Add", {g_.op("Tanh", {inner}), one})});
  }

  const GptImpl& gpt_;
  const GptConfig& c_;
  OnnxGraphBuilder& g_;
  std::map<std::string, at::Tensor> params_;
};

std::string serialize(const GptImpl& gpt, std::int64_t opset, bool decode) {
  onnx::ModelProto model = onnx_model(decode ? "decode" : "model", opset,
                                      decode ? "GPT decoder step with KV cache (lmrun transformer)"
                                             : "GPT decoder (lmrun transformer)");
  OnnxGraphBuilder builder(model.mutable_graph());
  GptGraph(gpt, builder).build(decode);
  return onnx_bytes(model);
}

}  // namespace

std::vector<OnnxGraph> gpt_onnx(const GptImpl& gpt, std::int64_t opset) {
  if (opset != 17) {  // LayerNormalization is 17's; ReduceMean's axes move to an input in 18
    throw Error("transformer: its ONNX graphs are opset 17, not " + std::to_string(opset));
  }
  return {{"model", serialize(gpt, opset, false)}, {"decode", serialize(gpt, opset, true)}};
}

}  // namespace lmrun::models
