// Building ONNX graphs from a model's tensors, for Model::export_onnx: a thin layer over the ONNX
// project's protobuf classes (Debian's libonnx-dev; link the plugin with `onnx_proto`), which
// names every node's outputs and turns LibTorch tensors into initializers.
//
//   onnx::ModelProto model = lmrun::onnx_model("model", 17, "what it computes");
//   lmrun::OnnxGraphBuilder g(model.mutable_graph());
//   g.value(true, "input_ids", true, {"batch", "sequence"});          // a graph input
//   const std::string w = g.constant("wte.weight", embedding);         // an initializer
//   const std::string x = g.op("Gather", {w, "input_ids"}, {lmrun::onnx_int("axis", 0)});
//   g.node("MatMul", {x, head}, 1, {}, {"logits"});                    // a named output
//   g.value(false, "logits", false, {"batch", "sequence", "65"});
//   std::string bytes = lmrun::onnx_bytes(model);
//
// Nodes are appended in the order they are made, so building an expression inside out (the
// arguments first, as C++ evaluates a braced list left to right) keeps the graph topologically
// sorted, as ONNX requires.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <onnx/onnx_pb.h>

#include "lmrun/error.h"

namespace lmrun {

// Builds one GraphProto: initializers from tensors, nodes with fresh output names.
class OnnxGraphBuilder {
 public:
  explicit OnnxGraphBuilder(onnx::GraphProto* graph) : graph_(graph) {}

  // An initializer named `name` holding `value` (made contiguous on the CPU): int64 and int8
  // tensors as they are, anything else as float32.
  std::string constant(const std::string& name, const at::Tensor& value) {
    const at::Tensor t = value.detach().to(at::kCPU).contiguous();
    onnx::TensorProto* proto = graph_->add_initializer();
    proto->set_name(name);
    const bool integer = t.scalar_type() == at::kLong || t.scalar_type() == at::kChar;
    if (t.scalar_type() == at::kLong) {
      proto->set_data_type(onnx::TensorProto_DataType_INT64);
    } else if (t.scalar_type() == at::kChar) {
      proto->set_data_type(onnx::TensorProto_DataType_INT8);
    } else {
      proto->set_data_type(onnx::TensorProto_DataType_FLOAT);
    }
    const at::Tensor data = integer ? t : t.to(at::kFloat);
    for (std::int64_t d : data.sizes()) proto->add_dims(d);
    proto->set_raw_data(data.data_ptr(), static_cast<std::size_t>(data.nbytes()));
    return name;
  }
  std::string ints(const std::string& name, const std::vector<std::int64_t>& values) {
    return constant(name, at::tensor(values, at::kLong));
  }
  std::string scalar(const std::string& name, float value) {
    return constant(name, at::full({}, value, at::kFloat));
  }

  // A node; returns its first output's name. `attrs` are int, ints or float attributes.
  struct Attr {
    std::string name;
    std::vector<std::int64_t> ints;
    float f = 0.0f;
    enum { kInt, kInts, kFloat, kString } kind = kInt;
    std::string text;  // kString
  };
  std::vector<std::string> node(const std::string& op, const std::vector<std::string>& inputs,
                                int outputs = 1, const std::vector<Attr>& attrs = {},
                                const std::vector<std::string>& names = {}) {
    onnx::NodeProto* n = graph_->add_node();
    n->set_op_type(op);
    n->set_name(op + "_" + std::to_string(counter_));
    for (const std::string& input : inputs) n->add_input(input);
    std::vector<std::string> out;
    for (int i = 0; i < outputs; ++i) {
      out.push_back(i < static_cast<int>(names.size())
                        ? names[static_cast<std::size_t>(i)]
                        : op + "_" + std::to_string(counter_) + "_" + std::to_string(i));
      n->add_output(out.back());
    }
    ++counter_;
    for (const Attr& a : attrs) {
      onnx::AttributeProto* attr = n->add_attribute();
      attr->set_name(a.name);
      if (a.kind == Attr::kFloat) {
        attr->set_type(onnx::AttributeProto_AttributeType_FLOAT);
        attr->set_f(a.f);
      } else if (a.kind == Attr::kString) {
        attr->set_type(onnx::AttributeProto_AttributeType_STRING);
        attr->set_s(a.text);
      } else if (a.kind == Attr::kInts) {
        attr->set_type(onnx::AttributeProto_AttributeType_INTS);
        for (std::int64_t v : a.ints) attr->add_ints(v);
      } else {
        attr->set_type(onnx::AttributeProto_AttributeType_INT);
        attr->set_i(a.ints.at(0));
      }
    }
    return out;
  }
  std::string op(const std::string& type, const std::vector<std::string>& inputs,
                 const std::vector<Attr>& attrs = {}) {
    return node(type, inputs, 1, attrs)[0];
  }

  // A graph input or output: float or int64, dims named (symbolic) or fixed.
  void value(bool input, const std::string& name, bool is_int64,
             const std::vector<std::string>& dims) {
    onnx::ValueInfoProto* v = input ? graph_->add_input() : graph_->add_output();
    v->set_name(name);
    onnx::TypeProto_Tensor* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(is_int64 ? onnx::TensorProto_DataType_INT64
                              : onnx::TensorProto_DataType_FLOAT);
    for (const std::string& d : dims) {
      onnx::TensorShapeProto_Dimension* dim = t->mutable_shape()->add_dim();
      if (!d.empty() && d.find_first_not_of("0123456789") == std::string::npos) {
        dim->set_dim_value(std::stoll(d));
      } else {
        dim->set_dim_param(d);
      }
    }
  }

 private:
  onnx::GraphProto* graph_;
  int counter_ = 0;
};

using OnnxAttr = OnnxGraphBuilder::Attr;
inline OnnxAttr onnx_int(const std::string& name, std::int64_t v) {
  return {name, {v}, 0.0f, OnnxAttr::kInt, {}};
}
inline OnnxAttr onnx_ints(const std::string& name, std::vector<std::int64_t> v) {
  return {name, std::move(v), 0.0f, OnnxAttr::kInts, {}};
}
inline OnnxAttr onnx_float(const std::string& name, float v) {
  return {name, {}, v, OnnxAttr::kFloat, {}};
}
inline OnnxAttr onnx_string(const std::string& name, std::string v) {
  return {name, {}, 0.0f, OnnxAttr::kString, std::move(v)};
}

// The gate blocks of a LibTorch LSTM or GRU weight or bias (along dim 0: (G*H, ...) or (G*H)) in
// the order ONNX's LSTM and GRU operators take them: LSTM [i, f, g, o] -> [i, o, f, c], GRU
// [r, z, n] -> [z, r, h] (with linear_before_reset = 1 for LibTorch's GRU).
inline at::Tensor onnx_gate_order(const at::Tensor& t, bool lstm) {
  const std::vector<at::Tensor> g = t.chunk(lstm ? 4 : 3, 0);
  return lstm ? at::cat({g[0], g[3], g[1], g[2]}) : at::cat({g[1], g[0], g[2]});
}

// An empty model at `opset` of the default domain, produced by lmrun.
inline onnx::ModelProto onnx_model(const std::string& graph_name, std::int64_t opset,
                                   const std::string& doc) {
  onnx::ModelProto model;
  model.set_ir_version(onnx::IR_VERSION);
  model.set_producer_name("lmrun");
  model.set_model_version(1);
  model.set_doc_string(doc);
  onnx::OperatorSetIdProto* set = model.add_opset_import();
  set->set_domain("");
  set->set_version(opset);
  model.mutable_graph()->set_name(graph_name);
  return model;
}

// The model's bytes (an OnnxGraph's model_proto). Throws lmrun::Error if protobuf cannot.
inline std::string onnx_bytes(const onnx::ModelProto& model) {
  std::string bytes;
  if (!model.SerializeToString(&bytes)) throw Error("cannot serialize the ONNX model");
  return bytes;
}

}  // namespace lmrun
