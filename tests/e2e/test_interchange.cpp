// Weights in and out, against readers and writers we did not write: `lmrun export` to safetensors
// (read by Hugging Face's @huggingface/hub), to nanoGPT's ckpt.pt (read by PyTorch's torch.load
// with weights_only, its logits computed by nanoGPT's architecture in PyTorch) and to ONNX (run by
// ONNX Runtime, the prefill graph and the KV-cached decode graph), `[model] init_from`
// from both and from a checkpoint PyTorch itself saved as nanoGPT's train.py does, round trips that
// give bit-identical weights, `freeze`, and every bad input refused with nothing left behind.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/serialize/input-archive.h>
#include <nlohmann/json.hpp>

#include "export/safetensors.h"
#include "support/interop.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using lmrun::test::kProbe;
using lmrun::test::kProbeJson;
using lmrun::test::lmrun_logits;
using lmrun::test::logits_from_json;
using lmrun::test::read_file;
using lmrun::test::run_lmrun;
using lmrun::test::run_program;
using lmrun::test::TempDir;
using testing::HasSubstr;
using testing::Not;

namespace {

// Debian's python3-torch; the PATH's python3 may be another interpreter without it.
constexpr const char* kPython = "/usr/bin/python3";

// gpt_tiny made a two-second run: 2 layers of 32, block 16, a few steps.
std::vector<std::string> tiny(const fs::path& out_dir, std::int64_t steps,
                              std::vector<std::string> more = {}) {
  std::vector<std::string> args = {
      (lmrun::test::source_dir() / "experiments" / "gpt_tiny.toml").string(),
      "--set",
      "model.n_layer=2",
      "--set",
      "model.n_head=2",
      "--set",
      "model.n_embd=32",
      "--set",
      "data.block_size=16",
      "--set",
      "train.batch_size=4",
      "--set",
      "train.max_steps=" + std::to_string(steps),
      "--set",
      "train.eval_interval=0",
      "--set",
      "train.eval_batches=2",
      "--set",
      "scheduler.warmup_steps=1",
      "--set",
      "scheduler.decay_steps=10",
      "--set",
      "generate.max_new_tokens=8",
      "--set",
      "experiment.out_dir=" + out_dir.string()};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

// Every tensor of a checkpoint's model.pt, by name.
std::map<std::string, at::Tensor> checkpoint_tensors(const fs::path& run) {
  torch::serialize::InputArchive archive;
  archive.load_from((run / "checkpoints" / "last" / "model.pt").string());
  std::map<std::string, at::Tensor> out;
  for (const std::string& key : archive.keys()) {
    at::Tensor value;
    if (archive.try_read(key, value)) out[key] = value;
  }
  return out;
}

void expect_same_weights(const fs::path& a, const fs::path& b) {
  const auto left = checkpoint_tensors(a), right = checkpoint_tensors(b);
  ASSERT_EQ(left.size(), right.size());
  for (const auto& [name, value] : left) {
    ASSERT_TRUE(right.count(name)) << name;
    EXPECT_TRUE(at::equal(value, right.at(name))) << name << " differs";
  }
}

// One trained run shared by the tests (a few steps: the weights differ from any initialisation).
class Interchange : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const auto result = run_lmrun(tiny(run(), 3), lmrun::test::source_dir());
    ASSERT_EQ(result.exit_code, 0) << result.output;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static fs::path run() { return dir_->path() / "trained"; }
  TempDir scratch_;

 private:
  static TempDir* dir_;
};
TempDir* Interchange::dir_ = nullptr;

TEST_F(Interchange, SafetensorsExportIsAHuggingFaceGpt2FolderThatHubReads) {
  const fs::path out = scratch_ / "hf";
  const auto result =
      run_lmrun({"export", run().string(), "--format", "safetensors", "-o", out.string()});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("layout gpt2"));
  EXPECT_THAT(result.output, HasSubstr("outputs identical to the model's"));
  for (const char* file : {"model.safetensors", "config.json", "config.toml", "tokenizer"})
    EXPECT_TRUE(fs::exists(out / file)) << file;

  const nlohmann::json config = nlohmann::json::parse(read_file(out / "config.json"));
  EXPECT_EQ(config["model_type"], "gpt2");
  EXPECT_EQ(config["architectures"][0], "GPT2LMHeadModel");
  EXPECT_EQ(config["n_layer"], 2);
  EXPECT_EQ(config["n_embd"], 32);
  EXPECT_EQ(config["n_positions"], 16);
  EXPECT_EQ(config["vocab_size"], 65);
  EXPECT_EQ(config["activation_function"], "gelu");  // exact GELU; "gelu_new" is the tanh one
  EXPECT_EQ(config["torch_dtype"], "float32");

  // Hugging Face's reader, from npm, over our file.
  const fs::path interop = lmrun::test::interop_dir();
  ASSERT_TRUE(fs::exists(interop / "node_modules" / "@huggingface" / "hub"))
      << "@huggingface/hub is not installed in " << interop
      << ": scripts/test.sh installs it (npm install --prefix " << interop << ")";
  const auto hub = run_program("node",
                               {lmrun::test::interop_script("read_safetensors.mjs").string(),
                                (out / "model.safetensors").string()},
                               interop);
  ASSERT_EQ(hub.exit_code, 0) << hub.errors;
  const nlohmann::json parsed = nlohmann::json::parse(hub.output);
  const auto ours = lmrun::host::read_safetensors(out / "model.safetensors");
  ASSERT_EQ(parsed["tensors"].size(), ours.tensors.size());
  std::int64_t count = 0;
  for (const auto& t : ours.tensors) {
    const auto& theirs = parsed["tensors"][t.name];
    EXPECT_EQ(theirs["dtype"], "F32") << t.name;
    EXPECT_EQ(theirs["shape"].get<std::vector<std::int64_t>>(), t.value.sizes().vec()) << t.name;
    count += t.value.numel();
    const auto first = parsed["first_values"][t.name].get<std::vector<double>>();
    for (std::size_t i = 0; i < first.size(); ++i)
      EXPECT_EQ(static_cast<float>(first[i]), t.value.flatten()[i].item<float>()) << t.name;
  }
  EXPECT_EQ(parsed["parameter_count"]["F32"], count);
  EXPECT_EQ(parsed["metadata"]["format"], "pt");
  // GPT2LMHeadModel's names and Conv1D's (in, out) orientation; the tied head is stored once.
  EXPECT_EQ(parsed["tensors"]["transformer.h.0.attn.c_attn.weight"]["shape"],
            nlohmann::json::array({32, 96}));
  EXPECT_EQ(parsed["tensors"]["transformer.h.1.mlp.c_proj.weight"]["shape"],
            nlohmann::json::array({128, 32}));
  EXPECT_FALSE(parsed["tensors"].contains("lm_head.weight"));
}

TEST_F(Interchange, SafetensorsRoundTripGivesBitIdenticalWeightsInEveryLayout) {
  for (const char* layout : {"gpt2", "lmrun"}) {
    SCOPED_TRACE(layout);
    const fs::path out = scratch_ / (std::string("st-") + layout);
    auto result = run_lmrun({"export", run().string(), "--format", "safetensors", "--layout",
                             layout, "-o", out.string()});
    ASSERT_EQ(result.exit_code, 0) << result.output;
    const fs::path tuned = scratch_ / (std::string("tuned-") + layout);
    result = run_lmrun(tiny(tuned, 0, {"--set", "model.init_from=" + out.string()}),
                       lmrun::test::source_dir());
    ASSERT_EQ(result.exit_code, 0) << result.output;
    EXPECT_THAT(result.output, HasSubstr("layout " + std::string(layout) + "): "));
    EXPECT_THAT(result.output, HasSubstr("tensors loaded"));
    EXPECT_THAT(result.output, HasSubstr("(the weights' own), not fitted"));
    expect_same_weights(run(), tuned);
    EXPECT_TRUE(at::equal(lmrun_logits(run(), kProbe), lmrun_logits(tuned, kProbe)));
    EXPECT_THAT(read_file(tuned / "summary.json"), HasSubstr("\"init_from\": \"" + out.string()));
  }
}

TEST_F(Interchange, Bf16ExportHalvesTheFileAndStaysClose) {
  const fs::path out = scratch_ / "bf16";
  const auto result = run_lmrun(
      {"export", run().string(), "--format", "safetensors", "--dtype", "bf16", "-o", out.string()});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("(rounding)"));
  const auto st = lmrun::host::read_safetensors(out / "model.safetensors");
  for (const auto& t : st.tensors) EXPECT_EQ(t.value.scalar_type(), at::kBFloat16) << t.name;
}

TEST_F(Interchange, PrunedExportHoldsZerosInTheLinearLayersOnly) {
  const fs::path out = scratch_ / "pruned";
  const auto result = run_lmrun({"export", run().string(), "--format", "safetensors", "--layout",
                                 "lmrun", "--prune", "0.5", "-o", out.string()});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  // 2 blocks of 4 linears: 2 x (3 + 1 + 4 + 4) x 32 x 32 weights, half of them zeroed.
  EXPECT_THAT(result.output, HasSubstr("pruned 8 linear layers (unstructured): 12288 of their "
                                       "24576 weights are zero"));
  EXPECT_THAT(result.output, HasSubstr("outputs identical to the model's"));  // the pruned one
  for (const auto& t : lmrun::host::read_safetensors(out / "model.safetensors").tensors) {
    const double zeros = (t.value == 0).to(at::kDouble).mean().item<double>();
    const bool linear = t.name.find(".weight") != std::string::npos && t.value.dim() == 2 &&
                        t.name.rfind("blocks.", 0) == 0;
    if (linear) {
      EXPECT_NEAR(zeros, 0.5, 1e-3) << t.name;
    } else {
      EXPECT_LT(zeros, 0.01) << t.name;  // embeddings, norms, biases untouched
    }
  }
}

TEST_F(Interchange, NanoGptCheckpointLoadsInPyTorchWithTheSameLogits) {
  const fs::path out = scratch_ / "nano";
  auto result = run_lmrun({"export", run().string(), "--format", "nanogpt", "-o", out.string()});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("wrote meta.pkl"));
  const auto torch_side =
      run_program(kPython, {lmrun::test::interop_script("nanogpt_ref.py").string(), "forward",
                            (out / "ckpt.pt").string(), kProbeJson});
  ASSERT_EQ(torch_side.exit_code, 0) << torch_side.errors;
  const at::Tensor theirs = logits_from_json(nlohmann::json::parse(torch_side.output));
  const at::Tensor ours = lmrun_logits(run(), kProbe);
  ASSERT_EQ(theirs.sizes(), ours.sizes());
  EXPECT_LT((theirs - ours).abs().max().item<double>(), 1e-4);

  // meta.pkl is a plain pickle sample.py reads: stoi and itos of the 65 characters.
  const auto meta = run_program(
      kPython, {"-c",
                "import pickle,sys; m = pickle.load(open(sys.argv[1], 'rb')); "
                "print(m['vocab_size'], len(m['stoi']), repr(m['itos'][0]), m['stoi']['a'])",
                (out / "meta.pkl").string()});
  ASSERT_EQ(meta.exit_code, 0) << meta.errors;
  EXPECT_EQ(meta.output, "65 65 '\\n' 39\n");

  // And back: init_from the ckpt.pt gives the trained weights exactly.
  const fs::path tuned = scratch_ / "from-nano";
  result = run_lmrun(tiny(tuned, 0, {"--set", "model.init_from=" + (out / "ckpt.pt").string()}),
                     lmrun::test::source_dir());
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("nanoGPT checkpoint, layout nanogpt"));
  expect_same_weights(run(), tuned);
}

TEST_F(Interchange, OnnxGraphsRunInOnnxRuntimeWithTheSameLogits) {
  const fs::path out = scratch_ / "onnx";
  const auto result = run_lmrun({"export", run().string(), "--format", "onnx", "-o", out.string()});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("wrote model.onnx (opset 17"));
  EXPECT_THAT(result.output, HasSubstr("wrote decode.onnx (opset 17"));
  EXPECT_THAT(result.output, HasSubstr("checked by onnx::checker"));

  const fs::path interop = lmrun::test::interop_dir();
  ASSERT_TRUE(fs::exists(interop / "node_modules" / "onnxruntime-node"))
      << "onnxruntime-node is not installed in " << interop << ": scripts/test.sh installs it";
  // The prompt's first 5 tokens in one decode step, then one token a step, the cache fed back.
  const auto ort = run_program(
      "node", {lmrun::test::interop_script("run_onnx.mjs").string(), out.string(), kProbeJson, "5"},
      interop);
  ASSERT_EQ(ort.exit_code, 0) << ort.errors;
  const nlohmann::json parsed = nlohmann::json::parse(ort.output);
  const at::Tensor ours = lmrun_logits(run(), kProbe);
  for (const char* graph : {"model", "decode"}) {
    SCOPED_TRACE(graph);
    const at::Tensor theirs = logits_from_json(parsed[graph]);
    ASSERT_EQ(theirs.sizes(), ours.sizes());
    EXPECT_LT((theirs - ours).abs().max().item<double>(), 1e-4);
  }
}

TEST_F(Interchange, Int8OnnxGraphsRunInOnnxRuntimeAsLmrunsInt8Does) {
  const fs::path fp32 = scratch_ / "onnx32", int8 = scratch_ / "onnx8";
  ASSERT_EQ(
      run_lmrun({"export", run().string(), "--format", "onnx", "-o", fp32.string()}).exit_code, 0);
  const auto result = run_lmrun(
      {"export", run().string(), "--format", "onnx", "--quantize", "int8", "-o", int8.string()});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("quantized int8: 8 linear weights"));
  // The linears' weights as int8 initializers (24,576 of them here): 1.9x smaller with the fp32
  // embeddings, positions and head.
  EXPECT_LT(fs::file_size(int8 / "model.onnx") * 10, fs::file_size(fp32 / "model.onnx") * 6);

  // As written (graph optimizations off), the graphs compute lmrun's INT8 arithmetic; ONNX
  // Runtime's default optimizations fuse DequantizeLinear -> MatMul into its own INT8 kernels,
  // which quantize activations their own way: within the quantization error, not to float
  // rounding.
  const at::Tensor ours = lmrun_logits(run(), kProbe, "int8");
  const at::Tensor unquantized = lmrun_logits(run(), kProbe);
  const double quantization = (ours - unquantized).abs().max().item<double>();
  for (const char* level : {"disabled", "all"}) {
    const auto ort = run_program("node",
                                 {lmrun::test::interop_script("run_onnx.mjs").string(),
                                  int8.string(), kProbeJson, "5", level},
                                 lmrun::test::interop_dir());
    ASSERT_EQ(ort.exit_code, 0) << ort.errors;
    const nlohmann::json parsed = nlohmann::json::parse(ort.output);
    for (const char* graph : {"model", "decode"}) {
      SCOPED_TRACE(std::string(graph) + ", optimizations " + level);
      const at::Tensor theirs = logits_from_json(parsed[graph]);
      ASSERT_EQ(theirs.sizes(), ours.sizes());
      const double diff = (theirs - ours).abs().max().item<double>();
      EXPECT_LT(diff, std::string(level) == "disabled" ? 1e-5 : quantization);
    }
  }
  const auto refused = run_lmrun({"export", run().string(), "--format", "safetensors", "--quantize",
                                  "int8", "-o", (scratch_ / "st8").string()});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.output, HasSubstr("--quantize applies to --format onnx"));
  EXPECT_FALSE(fs::exists(scratch_ / "st8"));
}

TEST_F(Interchange, InitFromACheckpointPyTorchSavedAsNanoGptsTrainPyDoes) {
  const fs::path ckpt = scratch_ / "ckpt.pt";
  // nanoGPT's shape here: 2 layers, 2 heads, 32 wide, block 16, 65 characters.
  const auto written = run_program(kPython, {lmrun::test::interop_script("nanogpt_ref.py").string(),
                                             "write", ckpt.string(), kProbeJson});
  ASSERT_EQ(written.exit_code, 0) << written.errors;
  const fs::path tuned = scratch_ / "from-torch";
  const auto result = run_lmrun(tiny(tuned, 0, {"--set", "model.init_from=" + ckpt.string()}),
                                lmrun::test::source_dir());
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const at::Tensor theirs = logits_from_json(nlohmann::json::parse(written.output));
  const at::Tensor ours = lmrun_logits(tuned, kProbe);
  EXPECT_LT((theirs - ours).abs().max().item<double>(), 1e-4);
}

TEST_F(Interchange, FreezeKeepsTheMatchedParametersFixed) {
  const fs::path out = scratch_ / "hf";
  ASSERT_EQ(run_lmrun({"export", run().string(), "--format", "safetensors", "-o", out.string()})
                .exit_code,
            0);
  const fs::path tuned = scratch_ / "frozen";
  const auto result = run_lmrun(tiny(tuned, 3,
                                     {"--set", "model.init_from=" + out.string(), "--set",
                                      "model.freeze=[\"wte\", \"blocks.0.*\"]"}),
                                lmrun::test::source_dir());
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("frozen: 13 tensors"));
  const auto before = checkpoint_tensors(run()), after = checkpoint_tensors(tuned);
  for (const auto& [name, value] : before) {
    const bool frozen = name == "wte.weight" || name.rfind("blocks.0.", 0) == 0;
    EXPECT_EQ(at::equal(value, after.at(name)), frozen) << name;
  }
  const nlohmann::json summary = nlohmann::json::parse(read_file(tuned / "summary.json"));
  EXPECT_EQ(summary["frozen"].size(), 13u);
  EXPECT_EQ(summary["frozen_parameters"], 65 * 32 + 12 * 32 * 32 + 13 * 32);
}

TEST_F(Interchange, ExportRefusesBadRequestsAndLeavesNothing) {
  const std::string r = run().string();
  auto expect_error = [&](std::vector<std::string> args, const std::string& message) {
    const auto result = run_lmrun(args);
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_THAT(result.output, HasSubstr(message));
    EXPECT_THAT(result.output, Not(HasSubstr("Exception raised from")));  // no LibTorch trace
  };
  expect_error({"export", r, "--format", "tflite", "-o", (scratch_ / "x").string()},
               "--format must be safetensors, nanogpt or onnx");
  expect_error({"export", r, "--format", "safetensors", "--checkpoint", "nosuch"}, "nosuch");
  expect_error({"export", r, "--format", "safetensors", "-o", (scratch_ / "no" / "out").string()},
               "does not exist");
  expect_error(
      {"export", r, "--format", "safetensors", "--dtype", "int4", "-o", (scratch_ / "x").string()},
      "--dtype must be fp32, bf16 or fp16");
  EXPECT_FALSE(fs::exists(scratch_ / "x"));
  EXPECT_FALSE(fs::exists(scratch_ / "no"));

  const fs::path out = scratch_ / "taken";
  fs::create_directories(out);
  lmrun::test::write_file(out / "mine.txt", "keep me");
  expect_error({"export", r, "--format", "safetensors", "-o", out.string()}, "already exists");
  EXPECT_EQ(read_file(out / "mine.txt"), "keep me");
  const auto forced =
      run_lmrun({"export", r, "--format", "safetensors", "-o", out.string(), "--force"});
  ASSERT_EQ(forced.exit_code, 0) << forced.output;
  EXPECT_FALSE(fs::exists(out / "mine.txt"));
  EXPECT_TRUE(fs::exists(out / "model.safetensors"));
  for (const auto& entry : fs::directory_iterator(scratch_.path()))  // no temporary left behind
    EXPECT_NE(entry.path().filename().string().rfind(".tmp-", 0), 0u) << entry.path();

  // An LSTM has no nanoGPT layout, and a model that is not GPT-2 is written under its own names.
  const fs::path lstm = scratch_ / "lstm";
  auto trained = run_lmrun(
      {(lmrun::test::source_dir() / "experiments" / "lstm_char.toml").string(), "--set",
       "train.max_steps=1", "--set", "train.eval_interval=0", "--set", "train.eval_batches=1",
       "--set", "model.n_hidden=16", "--set", "model.n_embd=8", "--set", "scheduler.warmup_steps=0",
       "--set", "experiment.out_dir=" + lstm.string()},
      lmrun::test::source_dir());
  ASSERT_EQ(trained.exit_code, 0) << trained.output;
  expect_error({"export", lstm.string(), "--format", "nanogpt", "-o", (scratch_ / "y").string()},
               "model 'lstm' cannot be written as nanogpt");
  expect_error({"eval", lstm.string(), "--quantize", "int8"}, "has no quantized inference");
  EXPECT_FALSE(fs::exists(scratch_ / "y"));
  const auto own = run_lmrun(
      {"export", lstm.string(), "--format", "safetensors", "-o", (scratch_ / "lstm-st").string()});
  ASSERT_EQ(own.exit_code, 0) << own.output;
  EXPECT_THAT(own.output, HasSubstr("written under lmrun's own names"));
  EXPECT_THAT(own.output, HasSubstr("outputs identical"));
}

TEST_F(Interchange, Int8InferenceEvaluatesAndGeneratesCloseToFp32) {
  auto val_loss = [](const std::string& output) {
    const auto at = output.find("val_loss");
    return at == std::string::npos
               ? -1.0
               : std::stod(output.substr(output.find_first_of("0123456789", at)));
  };
  const auto fp32 = run_lmrun({"eval", run().string()});
  ASSERT_EQ(fp32.exit_code, 0) << fp32.output;
  const auto int8 = run_lmrun({"eval", run().string(), "--quantize", "int8"});
  ASSERT_EQ(int8.exit_code, 0) << int8.output;
  EXPECT_THAT(int8.output, HasSubstr("lmrun: quantized int8: 8 linear weights"));
  EXPECT_GT(val_loss(fp32.output), 0);
  EXPECT_NEAR(val_loss(int8.output), val_loss(fp32.output), 0.05) << int8.output;
  const auto generated = run_lmrun(
      {"generate", run().string(), "--quantize", "int8", "-n", "20", "--prompt", "ROMEO:"});
  ASSERT_EQ(generated.exit_code, 0) << generated.output;
  EXPECT_THAT(generated.output, HasSubstr("ROMEO:"));
  // Where it does not apply.
  const auto inspect = run_lmrun({"inspect", run().string(), "--quantize", "int8"});
  EXPECT_EQ(inspect.exit_code, 2);
  EXPECT_THAT(inspect.output,
              HasSubstr("--quantize applies to generate, chat, eval, predict and export"));
  const auto scheme = run_lmrun({"eval", run().string(), "--quantize", "int4"});
  EXPECT_EQ(scheme.exit_code, 1);
  EXPECT_THAT(scheme.output, HasSubstr("no quantization scheme 'int4'"));
}

TEST_F(Interchange, InitFromRefusesBadWeightsBeforeAnyWork) {
  const fs::path hf = scratch_ / "hf";
  ASSERT_EQ(
      run_lmrun({"export", run().string(), "--format", "safetensors", "-o", hf.string()}).exit_code,
      0);
  auto expect_refused = [&](const fs::path& weights, std::vector<std::string> more,
                            const std::string& message) {
    const fs::path out = scratch_ / "refused";
    std::vector<std::string> extra = {"--set", "model.init_from=" + weights.string()};
    extra.insert(extra.end(), more.begin(), more.end());
    const auto result = run_lmrun(tiny(out, 2, extra), lmrun::test::source_dir());
    EXPECT_EQ(result.exit_code, 1) << result.output;
    EXPECT_THAT(result.output, HasSubstr(message));
    EXPECT_THAT(result.output, Not(HasSubstr("Exception raised from")));
    EXPECT_FALSE(fs::exists(out)) << "a run folder was made";
  };
  // Truncated.
  const std::string bytes = read_file(hf / "model.safetensors");
  lmrun::test::write_file(scratch_ / "cut.safetensors", bytes.substr(0, bytes.size() / 2));
  expect_refused(scratch_ / "cut.safetensors", {}, "cut.safetensors: tensor '");
  // Not weights at all.
  lmrun::test::write_file(scratch_ / "notes.txt", "hello\n");
  expect_refused(scratch_ / "notes.txt", {}, "is not a weights file");
  // Another shape, another depth: every mismatch named, with the way out.
  expect_refused(hf, {"--set", "data.block_size=32"},
                 "does not fit the model: 1 of another shape (wpe.weight: file [16, 32], model "
                 "[32, 32])");
  expect_refused(hf, {"--set", "model.n_layer=3"}, "12 missing (blocks.2.");
  expect_refused(hf, {"--set", "model.n_layer=3"}, "model.init_strict = false");
  // Another architecture altogether: an LSTM from GPT-2 weights.
  const fs::path lstm_out = scratch_ / "refused-lstm";
  const auto lstm = run_lmrun(
      {(lmrun::test::source_dir() / "experiments" / "lstm_char.toml").string(), "--set",
       "train.max_steps=1", "--set", "scheduler.warmup_steps=0", "--set",
       "model.init_from=" + hf.string(), "--set", "experiment.out_dir=" + lstm_out.string()},
      lmrun::test::source_dir());
  EXPECT_EQ(lstm.exit_code, 1) << lstm.output;
  EXPECT_THAT(lstm.output, HasSubstr("has nothing this model can take"));
  EXPECT_FALSE(fs::exists(lstm_out));
  // A pattern that freezes nothing.
  expect_refused(hf, {"--set", "model.freeze=[\"h.0.*\"]"}, "\"h.0.*\" matches no parameter");
  // lmrun check finds a missing file before anything is built.
  const auto check =
      run_lmrun({"check", (lmrun::test::source_dir() / "experiments" / "gpt_tiny.toml").string(),
                 "--set", "model.init_from=" + (scratch_ / "absent").string()},
                lmrun::test::source_dir());
  EXPECT_EQ(check.exit_code, 2) << check.output;  // the bad value came from --set
  EXPECT_THAT(check.output, HasSubstr("model.init_from"));
  EXPECT_THAT(check.output, HasSubstr("does not exist"));
}

}  // namespace
