// The LSTM / GRU language model as the ONNX graphs of onnx_export.h: an embedding Gather, one
// ONNX recurrent operator per layer, the head.
#include "onnx_export.h"

#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "lmrun/error.h"
#include "lmrun/util/onnx_graph.h"

namespace lmrun::models {
namespace {

class RecurrentGraph {
 public:
  RecurrentGraph(const RecurrentLmImpl& lm, OnnxGraphBuilder& g) : c_(lm.config()), g_(g) {
    for (const auto& item : lm.named_parameters(true)) params_[item.key()] = item.value();
  }

  // Builds the graph. decode: each layer's state in and out.
  void build(bool decode) {
    const bool lstm = c_.cell == CellKind::kLstm;
    const std::string length = decode ? "new" : "sequence", H = std::to_string(c_.n_hidden);
    g_.value(true, "input_ids", true, {"batch", length});
    if (decode) {
      for (std::int64_t k = 0; k < c_.n_layer; ++k) {
        g_.value(true, "state_h_" + std::to_string(k), false, {"1", "batch", H});
        if (lstm) g_.value(true, "state_c_" + std::to_string(k), false, {"1", "batch", H});
      }
    }
    const std::string wte = g_.constant("wte.weight", params_.at("wte.weight"));
    const std::string embedded = g_.op("Gather", {wte, "input_ids"}, {onnx_int("axis", 0)});
    std::string x = g_.op("Transpose", {embedded}, {onnx_ints("perm", {1, 0, 2})});  // (T, B, E)
    const std::string direction_axis = g_.ints("direction_axis", {1});
    for (std::int64_t k = 0; k < c_.n_layer; ++k) {
      const std::string y = layer(x, k, decode);  // (T, 1, B, H)
      x = g_.op("Squeeze", {y, direction_axis});  // (T, B, H)
    }
    x = g_.op("Transpose", {x}, {onnx_ints("perm", {1, 0, 2})});  // (B, T, H)

    const at::Tensor head =
        c_.tie_weights ? params_.at("wte.weight") : params_.at("lm_head.weight");  // (V, H)
    const std::string projected = g_.op("MatMul", {x, g_.constant("lm_head.weight_t", head.t())});
    g_.node("Add", {projected, g_.constant("lm_head.bias", params_.at("lm_head.bias"))}, 1, {},
            {"logits"});
    g_.value(false, "logits", false, {"batch", length, std::to_string(c_.vocab_size)});
    if (decode) {
      for (std::int64_t k = 0; k < c_.n_layer; ++k) {
        g_.value(false, "next_state_h_" + std::to_string(k), false, {"1", "batch", H});
        if (lstm) g_.value(false, "next_state_c_" + std::to_string(k), false, {"1", "batch", H});
      }
    }
  }

 private:
  // Layer k over x (T, B, in) -> Y (T, 1, B, H); decode: from state_*_k, its final state named
  // next_state_*_k.
  std::string layer(const std::string& x, std::int64_t k, bool decode) {
    const bool lstm = c_.cell == CellKind::kLstm;
    const std::string n = std::to_string(k);
    auto param = [&](const std::string& name) {
      return onnx_gate_order(params_.at("rnn." + name + "_l" + n), lstm);
    };
    // W (1, G*H, in), R (1, G*H, H), B (1, 2*G*H)
    const std::string w = g_.constant("rnn.W_" + n, param("weight_ih").unsqueeze(0));
    const std::string r = g_.constant("rnn.R_" + n, param("weight_hh").unsqueeze(0));
    const std::string b =
        g_.constant("rnn.B_" + n, at::cat({param("bias_ih"), param("bias_hh")}).unsqueeze(0));
    std::vector<std::string> inputs = {x, w, r, b};
    std::vector<std::string> outputs = {"rnn.Y_" + n};
    if (decode) {
      inputs.insert(inputs.end(), {"", "state_h_" + n});  // no sequence_lens
      outputs.push_back("next_state_h_" + n);
      if (lstm) {
        inputs.push_back("state_c_" + n);
        outputs.push_back("next_state_c_" + n);
      }
    }
    std::vector<OnnxAttr> attrs = {onnx_int("hidden_size", c_.n_hidden)};
    if (!lstm) attrs.push_back(onnx_int("linear_before_reset", 1));
    return g_.node(lstm ? "LSTM" : "GRU", inputs, static_cast<int>(outputs.size()), attrs,
                   outputs)[0];
  }

  const RecurrentLmConfig& c_;
  OnnxGraphBuilder& g_;
  std::map<std::string, at::Tensor> params_;
};

std::string serialize(const RecurrentLmImpl& lm, std::int64_t opset, bool decode) {
  const std::string cell = lm.config().cell == CellKind::kLstm ? "LSTM" : "GRU";
  onnx::ModelProto model =
      onnx_model(decode ? "decode" : "model", opset,
                 decode ? cell + " language model step with hidden state in and out (lmrun rnn)"
                        : cell + " language model from a zero state (lmrun rnn)");
  OnnxGraphBuilder builder(model.mutable_graph());
  RecurrentGraph(lm, builder).build(decode);
  return onnx_bytes(model);
}

}  // namespace

std::vector<OnnxGraph> recurrent_onnx(const RecurrentLmImpl& lm, std::int64_t opset) {
  if (opset != 17) {  // the graphs are built and checked against opset 17's operators
    throw Error(std::string(lm.config().cell == CellKind::kLstm ? "lstm" : "gru") +
                ": its ONNX graphs are opset 17, not " + std::to_string(opset));
  }
  return {{"model", serialize(lm, opset, false)}, {"decode", serialize(lm, opset, true)}};
}

}  // namespace lmrun::models
