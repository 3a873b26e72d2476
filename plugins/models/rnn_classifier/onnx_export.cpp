// The LSTM / GRU text classifier as the ONNX graph of onnx_export.h: an embedding Gather, one
// ONNX recurrent operator per layer over the real lengths, the pooling over real positions, the
// head.
#include "onnx_export.h"

#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "lmrun/error.h"
#include "lmrun/util/onnx_graph.h"

namespace lmrun::models {
namespace {

class ClassifierGraph {
 public:
  ClassifierGraph(const ClassifierShape& s, const torch::nn::Module& net, OnnxGraphBuilder& g)
      : s_(s), g_(g) {
    for (const auto& item : net.named_parameters(true)) params_[item.key()] = item.value();
  }

  void build() {
    g_.value(true, "input_ids", true, {"batch", "sequence"});
    g_.value(true, "attention_mask", true, {"batch", "sequence"});
    const std::string axis1 = g_.ints("axis_1", {1});
    // Initializers only some poolings use, made on first use (ONNX Runtime warns of unused ones).
    auto axis2 = [&, name = std::string()]() mutable {
      if (name.empty()) name = g_.ints("axis_2", {2});
      return name;
    };
    auto neg_inf = [&, name = std::string()]() mutable {
      if (name.empty()) name = g_.scalar("neg_inf", -std::numeric_limits<float>::infinity());
      return name;
    };
    // The lengths, at least 1 as the packed sequences clamp them, as ONNX's sequence_lens.
    const std::string lengths =
        g_.op("Max", {g_.op("ReduceSum", {"attention_mask", axis1}, {onnx_int("keepdims", 0)}),
                      g_.ints("one", {1})});  // (B)
    const std::string sequence_lens = g_.op("Cast", {lengths}, {onnx_int("to", kInt32)});

    const std::string wte = g_.constant("wte.weight", params_.at("wte.weight"));
    const std::string embedded = g_.op("Gather", {wte, "input_ids"}, {onnx_int("axis", 0)});
    std::string x = g_.op("Transpose", {embedded}, {onnx_ints("perm", {1, 0, 2})});  // (T, B, E)
    const std::string merge_dirs = g_.ints("merge_dirs", {0, 0, -1});
    std::string y_h;
    for (std::int64_t k = 0; k < s_.n_layer; ++k) {
      const auto [y, h] = layer(x, k, sequence_lens);  // (T, D, B, H), (D, B, H)
      // (T, B, D * H): each position's directions side by side, forward first, as LibTorch.
      x = g_.op("Reshape",
                {g_.op("Transpose", {y}, {onnx_ints("perm", {0, 2, 1, 3})}), merge_dirs});
      y_h = h;
    }

    std::string pooled;  // (B, D * H)
    if (s_.pooling == "last") {
      // The final state of each direction (forward after the last real token, backward after
      // reading back to the first), forward first.
      pooled = g_.op("Reshape", {g_.op("Transpose", {y_h}, {onnx_ints("perm", {1, 0, 2})}),
                                 g_.ints("flatten_dirs", {0, -1})});
    } else {
      const std::string out = g_.op("Transpose", {x}, {onnx_ints("perm", {1, 0, 2})});  // (B,T,W)
      // The mask as a condition (max, attention) or as weights (mean).
      const bool as_weights = s_.pooling == "mean";
      const std::string real =
          g_.op("Cast", {"attention_mask"}, {onnx_int("to", as_weights ? kFloat : kBool)});
      if (s_.pooling == "mean") {
        const std::string sum =
            g_.op("ReduceSum", {g_.op("Mul", {out, g_.op("Unsqueeze", {real, axis2()})}), axis1},
                  {onnx_int("keepdims", 0)});
        pooled = g_.op(
            "Div",
            {sum, g_.op("Unsqueeze", {g_.op("Cast", {lengths}, {onnx_int("to", kFloat)}), axis1})});
      } else if (s_.pooling == "max") {
        pooled = g_.op("ReduceMax",
                       {g_.op("Where", {g_.op("Unsqueeze", {real, axis2()}), out, neg_inf()})},
                       {onnx_ints("axes", {1}), onnx_int("keepdims", 0)});
      } else {  // attention: v . tanh(W h + b), softmax over the real positions
        const std::string projected = linear(out, "attn_proj", true);
        const std::string scores =
            g_.op("Squeeze", {linear(g_.op("Tanh", {projected}), "attn_score", false), axis2()});
        const std::string weights =
            g_.op("Softmax", {g_.op("Where", {real, scores, neg_inf()})}, {onnx_int("axis", 1)});
        pooled =
            g_.op("ReduceSum", {g_.op("Mul", {out, g_.op("Unsqueeze", {weights, axis2()})}), axis1},
                  {onnx_int("keepdims", 0)});
      }
    }
    std::string h = pooled;
    if (s_.head_hidden > 0) h = g_.op("Relu", {linear(h, "hidden", true)});
    const at::Tensor head = params_.at("head.weight");  // (C, in)
    g_.node("Add",
            {g_.op("MatMul", {h, g_.constant("head.weight_t", head.t())}),
             g_.constant("head.bias", params_.at("head.bias"))},
            1, {}, {"logits"});
    g_.value(false, "logits", false, {"batch", std::to_string(head.size(0))});
  }

 private:
  static constexpr std::int64_t kFloat = onnx::TensorProto_DataType_FLOAT;
  static constexpr std::int64_t kInt32 = onnx::TensorProto_DataType_INT32;
  static constexpr std::int64_t kBool = onnx::TensorProto_DataType_BOOL;

  // x @ name.weight^T (+ name.bias).
  std::string linear(const std::string& x, const std::string& name, bool bias) {
    const std::string product =
        g_.op("MatMul", {x, g_.constant(name + ".weight_t", params_.at(name + ".weight").t())});
    if (!bias) return product;
    return g_.op("Add", {product, g_.constant(name + ".bias", params_.at(name + ".bias"))});
  }

  // Layer k over x (T, B, in) for sequence_lens -> its Y (T, D, B, H) and Y_h (D, B, H).
  std::pair<std::string, std::string> layer(const std::string& x, std::int64_t k,
                                            const std::string& sequence_lens) {
    const bool lstm = s_.cell == "lstm";
    const std::string n = std::to_string(k);
    std::vector<std::string> suffixes = {""};
    if (s_.bidirectional) suffixes.push_back("_reverse");
    // Per direction, stacked: W (D, G*H, in), R (D, G*H, H), B (D, 2*G*H).
    std::vector<at::Tensor> w, r, b;
    for (const std::string& suffix : suffixes) {
      auto param = [&](const std::string& name) {
        return onnx_gate_order(params_.at("rnn." + name + "_l" + n + suffix), lstm);
      };
      w.push_back(param("weight_ih"));
      r.push_back(param("weight_hh"));
      b.push_back(at::cat({param("bias_ih"), param("bias_hh")}));
    }
    const std::vector<std::string> inputs = {
        x, g_.constant("rnn.W_" + n, at::stack(w)), g_.constant("rnn.R_" + n, at::stack(r)),
        g_.constant("rnn.B_" + n, at::stack(b)), sequence_lens};
    std::vector<OnnxAttr> attrs = {onnx_int("hidden_size", s_.n_hidden)};
    if (!lstm) attrs.push_back(onnx_int("linear_before_reset", 1));
    if (s_.bidirectional) attrs.push_back(onnx_string("direction", "bidirectional"));
    const auto outputs =
        g_.node(lstm ? "LSTM" : "GRU", inputs, lstm ? 3 : 2, attrs, {"rnn.Y_" + n, "rnn.Y_h_" + n});
    return {outputs[0], outputs[1]};
  }

  const ClassifierShape& s_;
  OnnxGraphBuilder& g_;
  std::map<std::string, at::Tensor> params_;
};

}  // namespace

std::vector<OnnxGraph> classifier_onnx(const ClassifierShape& shape, const torch::nn::Module& net,
                                       std::int64_t opset) {
  if (opset != 17) {  // the graph is built and checked against opset 17's operators
    throw Error("rnn_classifier: its ONNX graph is opset 17, not " + std::to_string(opset));
  }
  onnx::ModelProto model =
      onnx_model("model", opset,
                 std::string(shape.bidirectional ? "bidirectional " : "") +
                     (shape.cell == "lstm" ? "LSTM" : "GRU") + " text classifier, " +
                     shape.pooling + " pooling (lmrun rnn_classifier)");
  OnnxGraphBuilder builder(model.mutable_graph());
  ClassifierGraph(shape, net, builder).build();
  return {{"model", onnx_bytes(model)}};
}

}  // namespace lmrun::models
