// lmrun version and the plugin SDK's API version.
//
// The API version is what a plugin is built against. The host refuses a plugin whose major version
// differs from its own, or whose minor version is newer (the plugin may call what the host lacks).
// Bump the major version on any change that breaks a built plugin (a virtual added to an interface,
// a changed struct); bump the minor version when something is only appended.
#pragma once

#include <cstdint>

#define LMRUN_VERSION_STRING "0.1.0"

namespace lmrun {

inline constexpr const char* kVersion = LMRUN_VERSION_STRING;
// 8.1: ParamRole::kInputFile (ParamBuilder::input_file): a path that validation checks names a
// regular file.
// 8: Model::weight_layouts, export_weights and import_weights (weights under other tools' names:
// lmrun export, [model] init_from), with WeightLayout, NamedTensor and ExternalWeights;
// Model::quantize (--quantize int8) and export_onnx, with OnnxGraph.
// Migration notes: README, "Plugin SDK 8.0".
// 7: objectives are a plugin kind (objective.h, Kind::kObjective); Batch moves to batch.h and
// gains a Conditioning context; ModelContext::output and training_text; Model::token_embeddings,
// washout, forward_conditioned, uses_context, start_decoding_conditioned and diagnostics;
// Dataset::objective, special_tokens and chat_format; TokenizerContext::special_tokens;
// kIgnoreTarget moves to common.h. Migration notes: README, "Plugin SDK 7.0".
// 6: Model::can_decode (decoding optional), TorchModel, callbacks' on_after_backward,
// metric_names, TrainerControl::remove_checkpoint, log_metric, set_next_lr, Optimizer::
// learning_rates, Schema enforcement in parse and add_enum, parameter roles and shortcuts, size
// estimates, toolkit headers under lmrun/util/. Migration notes: README, "Plugin SDK 6.0".
inline constexpr std::uint32_t kApiVersionMajor = 8;
inline constexpr std::uint32_t kApiVersionMinor = 1;
// Major in the high 16 bits, minor in the low 16: what a plugin descriptor carries.
inline constexpr std::uint32_t kApiVersion = (kApiVersionMajor << 16) | kApiVersionMinor;

}  // namespace lmrun
