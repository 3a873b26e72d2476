#include "support/interop.h"

#include <ATen/ATen.h>
#include <torch/utils.h>

#include "cli/run_dir.h"
#include "support/test_support.h"
#include "train/pipeline.h"

namespace lmrun::test {

const std::vector<std::int64_t> kProbe = {18, 47, 56, 57, 58, 1, 15, 47, 58, 47, 64, 43, 52, 10};
const std::string kProbeJson = "[18, 47, 56, 57, 58, 1, 15, 47, 58, 47, 64, 43, 52, 10]";

at::Tensor lmrun_logits(const std::filesystem::path& run, const std::vector<std::int64_t>& tokens,
                        const std::string& quantize) {
  host::CommonArgs common;
  common.plugin_dirs.push_back(LMRUN_TEST_PLUGIN_DIR);
  host::RunDirArgs args;
  args.run_dir = run;
  const host::RunDir dir = host::open_run_dir(common, args, host::kGenerateKinds);
  host::Pipeline p = host::build_inference_pipeline(dir.resolved.experiment,
                                                    dir.resolved.plugins->registry, dir.checkpoint);
  if (!quantize.empty()) p.model->quantize(quantize);
  torch::NoGradGuard no_grad;
  return p.model->forward(at::tensor(tokens, at::kLong).unsqueeze(0), {})[0];
}

at::Tensor logits_from_json(const nlohmann::json& rows) {
  std::vector<double> values;
  for (const auto& row : rows)
    for (const auto& v : row) values.push_back(v.get<double>());
  return at::tensor(values, at::kDouble)
      .reshape({static_cast<std::int64_t>(rows.size()), -1})
      .to(at::kFloat);
}

std::filesystem::path interop_script(const std::string& name) {
  return source_dir() / "tests" / "interop" / name;
}

std::filesystem::path interop_dir() { return LMRUN_TEST_INTEROP_DIR; }

}  // namespace lmrun::test
