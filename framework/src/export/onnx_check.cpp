#include "export/onnx_check.h"

#include <fstream>

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include "lmrun/error.h"

namespace lmrun::host {

OnnxSummary check_onnx(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  onnx::ModelProto model;
  if (!in || !model.ParseFromIstream(&in)) {
    throw Error(path.string() + " is not an ONNX model (it does not parse as onnx.ModelProto)");
  }
  try {
    onnx::checker::check_model(model);
    onnx::shape_inference::InferShapes(model, onnx::OpSchemaRegistry::Instance(),
                                       onnx::ShapeInferenceOptions(/*check_type=*/true,
                                                                   /*strict_mode=*/1));
  } catch (const std::exception& e) {
    throw Error(path.string() + ": the ONNX checker refuses it: " + e.what(),
                "this is a bug in the model plugin's ONNX export; please report it");
  }
  OnnxSummary summary;
  for (const auto& set : model.opset_import())
    if (set.domain().empty()) summary.opset = set.version();
  summary.nodes = model.graph().node_size();
  summary.initializers = model.graph().initializer_size();
  for (const auto& v : model.graph().input()) summary.inputs.push_back(v.name());
  for (const auto& v : model.graph().output()) summary.outputs.push_back(v.name());
  return summary;
}

}  // namespace lmrun::host
