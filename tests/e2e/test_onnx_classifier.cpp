// The text classifier's ONNX export against a runtime we did not write: `lmrun export --format
// onnx` of briefly trained rnn_classifier runs (LSTM and GRU, one and two layers, one and two
// directions, each pooling, with and without a hidden layer), model.onnx run by ONNX Runtime on
// a right-padded batch of texts of different lengths, its logits compared with lmrun's own for
// the same batch and mask; the padding ids must not matter.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/utils.h>
#include <nlohmann/json.hpp>

#include "cli/run_dir.h"
#include "lmrun/model.h"
#include "support/interop.h"
#include "support/test_support.h"
#include "train/pipeline.h"

namespace fs = std::filesystem;
using lmrun::test::logits_from_json;
using lmrun::test::run_lmrun;
using lmrun::test::run_program;
using lmrun::test::TempDir;
using testing::HasSubstr;

namespace {

// Three right-padded texts of 6, 3 and 1 word ids, their mask, and the same batch with other
// ids at the padding.
const std::vector<std::vector<std::int64_t>> kIds = {
    {12, 7, 25, 3, 40, 9}, {31, 5, 18, 0, 0, 0}, {22, 0, 0, 0, 0, 0}};
const std::vector<std::vector<std::int64_t>> kOtherPadding = {
    {12, 7, 25, 3, 40, 9}, {31, 5, 18, 44, 2, 17}, {22, 13, 36, 8, 29, 4}};
const std::vector<std::vector<std::int64_t>> kMask = {
    {1, 1, 1, 1, 1, 1}, {1, 1, 1, 0, 0, 0}, {1, 0, 0, 0, 0, 0}};

at::Tensor rows_tensor(const std::vector<std::vector<std::int64_t>>& rows) {
  std::vector<std::int64_t> flat;
  for (const auto& row : rows) flat.insert(flat.end(), row.begin(), row.end());
  return at::tensor(flat, at::kLong).reshape({static_cast<std::int64_t>(rows.size()), -1});
}

std::string rows_json(const std::vector<std::vector<std::int64_t>>& rows) {
  return nlohmann::json(rows).dump();
}

// The run folder's model as `lmrun eval` builds it (checkpoint weights, eval mode).
std::shared_ptr<lmrun::Model> load_model(const fs::path& run) {
  lmrun::host::CommonArgs common;
  common.plugin_dirs.push_back(LMRUN_TEST_PLUGIN_DIR);
  lmrun::host::RunDirArgs args;
  args.run_dir = run;
  const lmrun::host::RunDir dir =
      lmrun::host::open_run_dir(common, args, lmrun::host::kGenerateKinds);
  lmrun::host::Pipeline p = lmrun::host::build_inference_pipeline(
      dir.resolved.experiment, dir.resolved.plugins->registry, dir.checkpoint);
  return p.model;
}

// lmrun's logits (B, C) for a batch, in-process.
at::Tensor lmrun_logits(lmrun::Model& model, const std::vector<std::vector<std::int64_t>>& ids,
                        const std::vector<std::vector<std::int64_t>>& mask) {
  torch::NoGradGuard no_grad;
  return model.forward(rows_tensor(ids), rows_tensor(mask).to(at::kBool)).to(at::kFloat);
}

double max_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

// experiments/sentiment_gru.toml made a two-step run of 8-wide embeddings and 8 hidden units,
// with the `model` settings.
std::vector<std::string> tiny(const fs::path& out_dir, const std::vector<std::string>& model) {
  std::vector<std::string> settings = {
      "model.n_embd=8",       "model.n_hidden=8",
      "model.dropout=0.1",    "train.batch_size=8",
      "train.max_steps=2",    "train.eval_interval=0",
      "train.eval_batches=1", "experiment.out_dir=" + out_dir.string()};
  for (const std::string& m : model) settings.push_back("model." + m);
  std::vector<std::string> args = {
      (lmrun::test::source_dir() / "experiments" / "sentiment_gru.toml").string()};
  for (const std::string& setting : settings) args.insert(args.end(), {"--set", setting});
  return args;
}

class OnnxClassifier : public testing::Test {
 protected:
  // Trains `model` briefly, exports it, runs model.onnx in ONNX Runtime on kIds (and on
  // kOtherPadding) and compares with lmrun's logits.
  void expect_onnx_runtime_agrees(const std::vector<std::string>& model) {
    const fs::path run = scratch_.path() / "run", out = scratch_.path() / "onnx";
    auto result = run_lmrun(tiny(run, model), lmrun::test::source_dir());
    ASSERT_EQ(result.exit_code, 0) << result.output;
    result = run_lmrun({"export", run.string(), "--format", "onnx", "-o", out.string()});
    ASSERT_EQ(result.exit_code, 0) << result.output;
    EXPECT_THAT(result.output, HasSubstr("wrote model.onnx (opset 17"));
    EXPECT_THAT(result.output,
                HasSubstr("input_ids, attention_mask -> logits), checked by onnx::checker"));
    EXPECT_FALSE(fs::exists(out / "decode.onnx"));

    const fs::path interop = lmrun::test::interop_dir();
    ASSERT_TRUE(fs::exists(interop / "node_modules" / "onnxruntime-node"))
        << "onnxruntime-node is not installed in " << interop << ": scripts/test.sh installs it";
    const std::string script = lmrun::test::interop_script("run_onnx_classifier.mjs").string();
    auto onnx_runtime = [&](const std::vector<std::vector<std::int64_t>>& ids) {
      const auto ort =
          run_program("node", {script, out.string(), rows_json(ids), rows_json(kMask)}, interop);
      EXPECT_EQ(ort.exit_code, 0) << ort.errors;
      return logits_from_json(nlohmann::json::parse(ort.output));
    };
    const at::Tensor theirs = onnx_runtime(kIds);
    const at::Tensor theirs_other_padding = onnx_runtime(kOtherPadding);

    const auto lm = load_model(run);
    const at::Tensor ours = lmrun_logits(*lm, kIds, kMask);
    ASSERT_EQ(theirs.sizes(), ours.sizes());
    ASSERT_EQ(ours.size(0), 3);
    const double diff = max_diff(theirs, ours);
    std::ostringstream text;
    text << diff;
    RecordProperty("max_abs_diff", text.str());
    std::cout << "[          ] max |onnx - lmrun| = " << diff << "\n";
    EXPECT_LT(diff, 1e-4);
    EXPECT_LT(max_diff(theirs_other_padding, theirs), 1e-6) << "the padding ids changed the logits";
    // Each text alone, unpadded, gives its row of the padded batch.
    for (std::size_t i = 0; i < kIds.size(); ++i) {
      SCOPED_TRACE(i);
      std::vector<std::int64_t> text_ids;
      for (std::size_t k = 0; k < kIds[i].size(); ++k)
        if (kMask[i][k]) text_ids.push_back(kIds[i][k]);
      const at::Tensor alone =
          lmrun_logits(*lm, {text_ids}, {std::vector<std::int64_t>(text_ids.size(), 1)});
      EXPECT_LT(max_diff(alone[0], theirs[static_cast<std::int64_t>(i)]), 1e-4);
    }
    // The rows differ: the comparison is not of one repeated row.
    EXPECT_GT(max_diff(ours[0], ours[2]), 0.0);
  }

  TempDir scratch_;
};

TEST_F(OnnxClassifier, TwoLayerBidirectionalLstmWithLastPooling) {
  expect_onnx_runtime_agrees({"cell=lstm", "n_layer=2", "bidirectional=true", "pooling=last"});
}

TEST_F(OnnxClassifier, BidirectionalGruWithAttentionAndAHiddenLayer) {
  expect_onnx_runtime_agrees(
      {"cell=gru", "n_layer=1", "bidirectional=true", "pooling=attention", "head_hidden=8"});
}

TEST_F(OnnxClassifier, TwoLayerGruWithMeanPooling) {
  expect_onnx_runtime_agrees({"cell=gru", "n_layer=2", "bidirectional=false", "pooling=mean"});
}

TEST_F(OnnxClassifier, BidirectionalLstmWithMaxPoolingAndAHiddenLayer) {
  expect_onnx_runtime_agrees(
      {"cell=lstm", "n_layer=1", "bidirectional=true", "pooling=max", "head_hidden=6"});
}

TEST_F(OnnxClassifier, UnidirectionalLstmWithLastPooling) {
  expect_onnx_runtime_agrees({"cell=lstm", "n_layer=1", "bidirectional=false", "pooling=last"});
}

TEST_F(OnnxClassifier, OnlyOpset17IsOffered) {
  const auto model = lmrun::test::plugin_registry().create<lmrun::Model>(
      "rnn_classifier", lmrun::test::plugin_params(lmrun::Kind::kModel, "rnn_classifier"),
      lmrun::ModelContext{50, 16, 3, 0});
  EXPECT_EQ(model->export_onnx(17).size(), 1u);
  EXPECT_THAT(lmrun::test::error_of([&] { model->export_onnx(18); }),
              HasSubstr("rnn_classifier: its ONNX graph is opset 17, not 18"));
}

}  // namespace
