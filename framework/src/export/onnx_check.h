// ONNX files read back with the ONNX project's own library (Debian's libonnx): parsed, checked by
// onnx::checker and run through its strict shape inference, as `lmrun export --format onnx` does
// before a folder takes its name.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace lmrun::host {

struct OnnxSummary {
  std::int64_t opset = 0;
  std::int64_t nodes = 0;
  std::int64_t initializers = 0;
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
};

// Throws lmrun::Error naming the file and what the checker or shape inference found.
OnnxSummary check_onnx(const std::filesystem::path& path);

}  // namespace lmrun::host
