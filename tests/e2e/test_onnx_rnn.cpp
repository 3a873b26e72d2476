// The recurrent language models' ONNX export against a runtime we did not write: `lmrun export
// --format onnx` of a briefly trained two-layer LSTM and GRU, the graphs run by ONNX Runtime (the
// full-sequence graph, and the decode graph fed a 5-token chunk and then one token a step, its
// state outputs fed back), their logits compared with lmrun's own.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "lmrun/model.h"
#include "support/interop.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using lmrun::test::kProbe;
using lmrun::test::kProbeJson;
using lmrun::test::lmrun_logits;
using lmrun::test::logits_from_json;
using lmrun::test::run_lmrun;
using lmrun::test::run_program;
using lmrun::test::TempDir;
using testing::HasSubstr;

namespace {

// experiments/<name>.toml made a two-second run: 2 layers of 16, block 16, 3 steps, and the
// `more` settings.
std::vector<std::string> tiny(const std::string& name, const fs::path& out_dir,
                              const std::vector<std::string>& more = {}) {
  std::vector<std::string> settings = {
      "model.n_layer=2",           "model.n_hidden=16",
      "data.block_size=16",        "train.batch_size=4",
      "train.max_steps=3",         "train.eval_interval=0",
      "train.eval_batches=1",      "scheduler.warmup_steps=0",
      "generate.max_new_tokens=8", "experiment.out_dir=" + out_dir.string()};
  settings.insert(settings.end(), more.begin(), more.end());
  std::vector<std::string> args = {
      (lmrun::test::source_dir() / "experiments" / (name + ".toml")).string()};
  for (const std::string& setting : settings) args.insert(args.end(), {"--set", setting});
  return args;
}

// Two trained runs shared by the tests: an untied LSTM (8-wide embedding) and a GRU whose head
// is tied to its 16-wide embedding.
class OnnxRnn : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    auto result =
        run_lmrun(tiny("lstm_char", lstm(), {"model.n_embd=8"}), lmrun::test::source_dir());
    ASSERT_EQ(result.exit_code, 0) << result.output;
    result = run_lmrun(tiny("gru_char", gru(), {"model.n_embd=16", "model.tie_weights=true"}),
                       lmrun::test::source_dir());
    ASSERT_EQ(result.exit_code, 0) << result.output;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static fs::path lstm() { return dir_->path() / "lstm"; }
  static fs::path gru() { return dir_->path() / "gru"; }

  // Exports `run` as ONNX, checks lmrun's report with `expect_io` (the decode graph's inputs and
  // outputs as it lists them), runs both graphs in ONNX Runtime and compares their logits with
  // lmrun's.
  void expect_onnx_runtime_agrees(const fs::path& run, const std::string& expect_io) {
    const fs::path out = scratch_ / "onnx";
    const auto result = run_lmrun({"export", run.string(), "--format", "onnx", "-o", out.string()});
    ASSERT_EQ(result.exit_code, 0) << result.output;
    EXPECT_THAT(result.output, HasSubstr("wrote model.onnx (opset 17"));
    EXPECT_THAT(result.output, HasSubstr("input_ids -> logits), checked by onnx::checker"));
    EXPECT_THAT(result.output, HasSubstr("wrote decode.onnx (opset 17"));
    EXPECT_THAT(result.output, HasSubstr(expect_io));

    const fs::path interop = lmrun::test::interop_dir();
    ASSERT_TRUE(fs::exists(interop / "node_modules" / "onnxruntime-node"))
        << "onnxruntime-node is not installed in " << interop << ": scripts/test.sh installs it";
    // The first 5 tokens in one decode step, then one token a step, the state fed back.
    const fs::path script = lmrun::test::interop_script("run_onnx.mjs");
    const auto ort = run_program("node", {script.string(), out.string(), kProbeJson, "5"}, interop);
    ASSERT_EQ(ort.exit_code, 0) << ort.errors;
    const nlohmann::json parsed = nlohmann::json::parse(ort.output);
    const at::Tensor ours = lmrun_logits(run, kProbe);
    for (const char* graph : {"model", "decode"}) {
      SCOPED_TRACE(graph);
      const at::Tensor theirs = logits_from_json(parsed[graph]);
      ASSERT_EQ(theirs.sizes(), ours.sizes());
      const double diff = (theirs - ours).abs().max().item<double>();
      std::ostringstream text;
      text << diff;
      RecordProperty(std::string(graph) + "_max_abs_diff", text.str());
      EXPECT_LT(diff, 1e-4);
    }
  }

  TempDir scratch_;

 private:
  static TempDir* dir_;
};
TempDir* OnnxRnn::dir_ = nullptr;

TEST_F(OnnxRnn, LstmGraphsRunInOnnxRuntimeWithTheSameLogits) {
  // input_ids and state_h_k, state_c_k for 2 layers; logits and their next_ twins.
  expect_onnx_runtime_agrees(lstm(), "input_ids, ... (5 inputs) -> logits, ... (5 outputs)");
}

TEST_F(OnnxRnn, GruGraphsRunInOnnxRuntimeWithTheSameLogits) {
  expect_onnx_runtime_agrees(
      gru(), "input_ids, state_h_0, state_h_1 -> logits, next_state_h_0, next_state_h_1)");
}

TEST_F(OnnxRnn, OnlyOpset17IsOffered) {
  const auto model = lmrun::test::plugin_registry().create<lmrun::Model>(
      "lstm", lmrun::test::plugin_params(lmrun::Kind::kModel, "lstm"),
      lmrun::ModelContext{65, 16, 0, -1});
  EXPECT_EQ(model->export_onnx(17).size(), 2u);
  EXPECT_THAT(lmrun::test::error_of([&] { model->export_onnx(18); }),
              HasSubstr("lstm: its ONNX graphs are opset 17, not 18"));
}

}  // namespace
