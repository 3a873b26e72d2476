// What the interchange tests share: lmrun's own logits from a run folder, computed in-process as
// `lmrun generate` builds the model, and the readers' outputs parsed back into tensors.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

namespace lmrun::test {

// A probe of 14 tinyshakespeare character ids, as a list and as JSON for the readers' scripts.
extern const std::vector<std::int64_t> kProbe;
extern const std::string kProbeJson;

// The logits (T, V) of the run folder's checkpoint for `tokens` (one sequence), in eval mode,
// the model quantized first when `quantize` names a scheme (Model::quantize).
at::Tensor lmrun_logits(const std::filesystem::path& run, const std::vector<std::int64_t>& tokens,
                        const std::string& quantize = {});

// Rows of numbers (a JSON array of arrays) as a (rows, columns) float tensor.
at::Tensor logits_from_json(const nlohmann::json& rows);

// tests/interop/NAME, and the folder scripts/test.sh installs the npm readers into.
std::filesystem::path interop_script(const std::string& name);
std::filesystem::path interop_dir();

}  // namespace lmrun::test
