// The interchange formats' own code: safetensors written and read back (and refused when damaged),
// torch.save files through LibTorch's pickler, name patterns for model.freeze, and init_from's
// matching of a file's tensors to a model by name and shape.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/utils.h>

#include "export/export.h"
#include "export/prune.h"
#include "export/safetensors.h"
#include "export/torch_file.h"
#include "export/weights.h"
#include "export/weights_unpickler.h"
#include "support/test_support.h"

namespace {

using lmrun::NamedTensor;
using lmrun::test::error_of;
using lmrun::test::TempDir;
using namespace lmrun::host;
using ::testing::HasSubstr;

std::vector<NamedTensor> sample_tensors() {
  return {{"b.weight", at::arange(12, at::kFloat).reshape({3, 4}) / 7},
          {"a.bias", at::tensor({1.5f, -2.0f})},
          {"ids", at::tensor({3, 1, 4}, at::kLong)}};
}

std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

TEST(Safetensors, RoundTripsNamesShapesValuesAndMetadata) {
  TempDir dir;
  write_safetensors(dir / "m.safetensors", sample_tensors(), {{"format", "pt"}}, at::kFloat);
  const Safetensors back = read_safetensors(dir / "m.safetensors");
  ASSERT_EQ(back.tensors.size(), 3u);
  EXPECT_EQ(back.metadata.at("format"), "pt");
  const std::vector<NamedTensor> want = sample_tensors();
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(back.tensors[i].name, want[i].name);  // the order written
    EXPECT_EQ(back.tensors[i].value.scalar_type(), want[i].value.scalar_type());
    EXPECT_TRUE(at::equal(back.tensors[i].value, want[i].value)) << want[i].name;
  }
  // The layout the format fixes: a little-endian u64 header length, JSON, data 8-byte aligned.
  const std::string bytes = read_bytes(dir / "m.safetensors");
  std::uint64_t length = 0;
  std::memcpy(&length, bytes.data(), 8);
  EXPECT_EQ(length % 8, 0u);
  EXPECT_EQ(bytes[8], '{');
  EXPECT_EQ(bytes.size(), 8 + length + 12 * 4 + 2 * 4 + 3 * 8);
}

TEST(Safetensors, ConvertsFloatsToHalfPrecisionOnly) {
  TempDir dir;
  write_safetensors(dir / "m.safetensors", sample_tensors(), {}, at::kBFloat16);
  const Safetensors back = read_safetensors(dir / "m.safetensors");
  EXPECT_EQ(back.tensors[0].value.scalar_type(), at::kBFloat16);
  EXPECT_EQ(back.tensors[2].value.scalar_type(), at::kLong);  // integers stay as they are
  EXPECT_TRUE(at::allclose(back.tensors[0].value.to(at::kFloat), sample_tensors()[0].value, 1e-2));
  EXPECT_THAT(read_bytes(dir / "m.safetensors"), HasSubstr("\"BF16\""));
}

TEST(Safetensors, RefusesADamagedFileNamingIt) {
  TempDir dir;
  write_safetensors(dir / "m.safetensors", sample_tensors(), {}, at::kFloat);
  const std::string bytes = read_bytes(dir / "m.safetensors");

  write_bytes(dir / "cut.safetensors", bytes.substr(0, bytes.size() - 5));
  EXPECT_THAT(error_of([&] { read_safetensors(dir / "cut.safetensors"); }),
              HasSubstr("cut.safetensors: tensor 'ids' ends at byte"));
  write_bytes(dir / "short.safetensors", bytes.substr(0, 5));
  EXPECT_THAT(error_of([&] { read_safetensors(dir / "short.safetensors"); }),
              HasSubstr("shorter than the 8-byte header length"));
  write_bytes(dir / "header.safetensors", bytes.substr(0, 40));
  EXPECT_THAT(error_of([&] { read_safetensors(dir / "header.safetensors"); }),
              HasSubstr("runs past the end of the file"));
  std::string bad = bytes;
  bad[8] = '[';
  write_bytes(dir / "json.safetensors", bad);
  EXPECT_THAT(error_of([&] { read_safetensors(dir / "json.safetensors"); }),
              HasSubstr("the header is not JSON"));
  std::string wrong_size = bytes;
  const std::size_t at = wrong_size.find("[3,4]");
  ASSERT_NE(at, std::string::npos);
  wrong_size.replace(at, 5, "[4,4]");
  write_bytes(dir / "size.safetensors", wrong_size);
  EXPECT_THAT(
      error_of([&] { read_safetensors(dir / "size.safetensors"); }),
      HasSubstr("tensor 'b.weight': shape [4, 4] of F32 needs 64 bytes, its range holds 48"));
}

TEST(TorchFile, WritesWhatLibTorchsUnpicklerReadsBackWithoutTypeTags) {
  TempDir dir;
  c10::impl::GenericDict checkpoint(c10::StringType::get(), c10::AnyType::get());
  checkpoint.insert("model", state_dict(sample_tensors()));
  checkpoint.insert("model_args",
                    ivalue_from_json(R"({"n_layer": 2, "bias": true, "dropout": 0.0})"));
  write_torch_file(dir / "ckpt.pt", checkpoint);
  // torch.load(weights_only=True) refuses TorchScript's type tags (torch.jit._pickle).
  EXPECT_THAT(read_bytes(dir / "ckpt.pt"), ::testing::Not(HasSubstr("restore_type_tag")));

  const c10::IValue back = read_torch_file(dir / "ckpt.pt");
  const std::vector<NamedTensor> tensors = state_dict_entries(back);
  ASSERT_EQ(tensors.size(), 3u);
  EXPECT_EQ(tensors[0].name, "b.weight");
  EXPECT_TRUE(at::equal(tensors[0].value, sample_tensors()[0].value));
  const c10::impl::GenericDict args = back.toGenericDict().at("model_args").toGenericDict();
  EXPECT_EQ(args.at("n_layer").toInt(), 2);
  EXPECT_TRUE(args.at("bias").toBool());
}

TEST(TorchFile, StripsTorchCompilesPrefixAndFindsTheStateDict) {
  c10::Dict<std::string, at::Tensor> compiled;
  compiled.insert("_orig_mod.wte.weight", at::ones({2}));
  c10::impl::GenericDict checkpoint(c10::StringType::get(), c10::AnyType::get());
  checkpoint.insert("state_dict", compiled);
  const std::vector<NamedTensor> tensors = state_dict_entries(checkpoint);
  ASSERT_EQ(tensors.size(), 1u);
  EXPECT_EQ(tensors[0].name, "wte.weight");
  EXPECT_TRUE(state_dict_entries(c10::IValue(std::int64_t{3})).empty());
}

TEST(TorchFile, RefusesWhatIsNotATorchSaveFile) {
  TempDir dir;
  lmrun::test::write_file(dir / "x.pt", "PK but not a zip at all");
  EXPECT_THAT(error_of([&] { read_torch_file(dir / "x.pt"); }), HasSubstr("x.pt cannot be read"));
  lmrun::test::write_file(dir / "y.pt", "hello");
  EXPECT_THAT(error_of([&] { read_torch_file(dir / "y.pt"); }),
              HasSubstr("y.pt is not a torch.save file"));
}

TEST(FreezePatterns, MatchGlobsAndModulePaths) {
  EXPECT_TRUE(matches_pattern("wte.weight", "wte"));
  EXPECT_FALSE(matches_pattern("wte2.weight", "wte"));
  EXPECT_TRUE(matches_pattern("blocks.0.attn.qkv.weight", "blocks.0.*"));
  EXPECT_FALSE(matches_pattern("blocks.10.attn.qkv.weight", "blocks.1.*"));
  EXPECT_TRUE(matches_pattern("blocks.3.ln_1.bias", "*.bias"));
  EXPECT_TRUE(matches_pattern("blocks.3.ln_1.bias", "blocks.*.ln_*.bias"));
  EXPECT_FALSE(matches_pattern("blocks.3.ln_1.weight", "*.bias"));
  EXPECT_TRUE(matches_pattern("ln_f.weight", "ln_f.weight"));
}

// A model of two linears, for matching files against.
class TwoLinears final : public lmrun::Model {
 public:
  TwoLinears() {
    module_.register_module("a", torch::nn::Linear(3, 2));
    module_.register_module("b", torch::nn::Linear(2, 4));
  }
  torch::nn::Module& module() override { return module_; }
  at::Tensor forward(const at::Tensor& inputs, const at::Tensor&) override { return inputs; }

 private:
  torch::nn::Module module_;
};

WeightsSource source_of(std::vector<NamedTensor> tensors) {
  WeightsSource source;
  source.file = "w.safetensors";
  source.format = "safetensors";
  source.tensors = std::move(tensors);
  source.layouts = {kOwnLayout};
  return source;
}

TEST(InitFrom, LoadsEveryTensorThatMatchesByNameAndShape) {
  TwoLinears model;
  WeightsSource source = source_of({{"a.weight", at::full({2, 3}, 0.5)},
                                    {"a.bias", at::full({2}, -1.0)},
                                    {"b.weight", at::full({4, 2}, 2.0)},
                                    {"b.bias", at::full({4}, 3.0)}});
  const InitReport report = load_weights(model, source, /*strict=*/true);
  EXPECT_EQ(report.loaded, 4);
  EXPECT_TRUE(report.complete());
  EXPECT_TRUE(at::equal(model.module().named_parameters()["b.weight"], at::full({4, 2}, 2.0)));
}

TEST(InitFrom, StrictRefusesListingEveryMismatchBeforeCopyingAnything) {
  TwoLinears model;
  const at::Tensor before = model.module().named_parameters()["a.weight"].clone();
  WeightsSource source = source_of({{"a.weight", at::zeros({2, 3})},
                                    {"b.weight", at::zeros({5, 2})},
                                    {"c.weight", at::zeros({1})}});
  const std::string message = error_of([&] { load_weights(model, source, true); });
  EXPECT_THAT(message, HasSubstr("1 of another shape (b.weight: file [5, 2], model [4, 2])"));
  EXPECT_THAT(message, HasSubstr("2 missing (a.bias, b.bias)"));
  EXPECT_THAT(message, HasSubstr("1 not in the model (c.weight)"));
  EXPECT_TRUE(at::equal(model.module().named_parameters()["a.weight"], before));

  const InitReport loose = load_weights(model, source, /*strict=*/false);
  EXPECT_EQ(loose.loaded, 1);
  EXPECT_TRUE(at::equal(model.module().named_parameters()["a.weight"], at::zeros({2, 3})));
}

TEST(InitFrom, RefusesWeightsOfAnotherArchitectureOutright) {
  TwoLinears model;
  WeightsSource source = source_of({{"h.0.attn.c_attn.weight", at::zeros({8, 24})}});
  EXPECT_THAT(error_of([&] { load_weights(model, source, false); }),
              HasSubstr("has nothing this model can take"));
}

TEST(InitFrom, RefusesFilesThatAreNotWeights) {
  TempDir dir;
  lmrun::test::write_file(dir / "notes.txt", "just some text, not weights\n");
  EXPECT_THAT(error_of([&] { read_weights(dir / "notes.txt"); }),
              HasSubstr("notes.txt is not a weights file"));
  EXPECT_THAT(error_of([&] { read_weights(dir / "absent.safetensors"); }),
              HasSubstr("does not exist"));
  EXPECT_THAT(error_of([&] { read_weights(dir.path()); }),
              HasSubstr("is a folder without weights"));
}

TEST(Freeze, StopsGradientsOfMatchedParametersAndRefusesAnUnmatchedPattern) {
  TwoLinears model;
  const FreezeReport report = freeze_parameters(model, {"a"});
  EXPECT_EQ(report.frozen, (std::vector<std::string>{"a.weight", "a.bias"}));
  EXPECT_EQ(report.frozen_parameters, 8);
  EXPECT_FALSE(model.module().named_parameters()["a.weight"].requires_grad());
  EXPECT_TRUE(model.module().named_parameters()["b.weight"].requires_grad());
  EXPECT_THAT(error_of([&] { freeze_parameters(model, {"blocks.*"}); }),
              HasSubstr("\"blocks.*\" matches no parameter"));
}

}  // namespace

namespace {

// Pickle bytes from a readable list of opcodes and arguments.
std::string pickle(std::initializer_list<std::string> parts) {
  std::string out;
  for (const std::string& p : parts) out += p;
  return out;
}
std::string unicode(const std::string& s) {
  return std::string("\x8c") + static_cast<char>(s.size()) + s;  // SHORT_BINUNICODE
}

lmrun::host::StorageReader no_storage() {
  return [](const std::string& key) -> std::string { throw lmrun::Error("no storage " + key); };
}

TEST(WeightsUnpickler, ReadsWhatPythonWritesSetitemOrderedDictBuildAndLongs) {
  // {"a": OrderedDict() with BUILD state, "b": -2 (LONG1), "c": [1.5 (BINFLOAT), None, True]}
  const std::string bytes = pickle({"\x80\x02",
                                    "}",
                                    unicode("a"),
                                    "c",
                                    "collections\nOrderedDict\n",
                                    ")",
                                    "R",
                                    "}",
                                    "b",
                                    "s",
                                    unicode("b"),
                                    std::string("\x8a\x01\xfe", 3),
                                    "s",
                                    unicode("c"),
                                    "]",
                                    "(",
                                    std::string("G\x3f\xf8\0\0\0\0\0\0", 9),
                                    "N",
                                    "\x88",
                                    "e",
                                    "s",
                                    "."});
  const Unpickled u = unpickle_weights(bytes, no_storage());
  const c10::impl::GenericDict dict = u.value.toGenericDict();
  EXPECT_TRUE(dict.at(c10::IValue("a")).isGenericDict());
  EXPECT_EQ(dict.at(c10::IValue("b")).toInt(), -2);
  const c10::impl::GenericList list = dict.at(c10::IValue("c")).toList();
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list.get(0).toDouble(), 1.5);
  EXPECT_TRUE(list.get(1).isNone());
  EXPECT_TRUE(list.get(2).toBool());
  EXPECT_TRUE(u.skipped_globals.empty());
}

TEST(WeightsUnpickler, BuildsTensorsFromStoragesAndCallsNothingElse) {
  // _rebuild_tensor_v2(storage('0', float, 6), offset 1, size (2,), stride (2,), False, {})
  const std::string bytes = pickle(
      {"\x80\x02", "c", "torch._utils\n_rebuild_tensor_v2\n", "(", "(", unicode("storage"), "c",
       "torch\nFloatStorage\n", unicode("0"), unicode("cpu"), "K\x06", "t", "Q", "K\x01", "K\x02",
       std::string("\x85", 1), "K\x02", std::string("\x85", 1), "\x89", "}", "t", "R",
       // then a global lmrun does not know, called: it reads as None and is recorded
       "c", "os\nsystem\n", unicode("echo hi"), std::string("\x85", 1), "R", std::string("\x86", 1),
       "."});
  const float values[6] = {0, 1, 2, 3, 4, 5};
  const Unpickled u = unpickle_weights(bytes, [&](const std::string& key) {
    EXPECT_EQ(key, "0");
    return std::string(reinterpret_cast<const char*>(values), sizeof(values));
  });
  const auto& pair = u.value.toTupleRef().elements();
  EXPECT_TRUE(at::equal(pair[0].toTensor(), at::tensor({1.0f, 3.0f})));
  EXPECT_TRUE(pair[1].isNone());
  EXPECT_EQ(u.skipped_globals, std::vector<std::string>{"os system"});
}

TEST(WeightsUnpickler, RefusesTruncatedAndForeignPickles) {
  EXPECT_THAT(error_of([] {
                unpickle_weights(pickle({"\x80\x02", "}", unicode("a")}), no_storage());
              }),
              HasSubstr("truncated"));
  EXPECT_THAT(error_of([] {
                unpickle_weights(pickle({"\x80\x02", "i", "."}), no_storage());
              }),
              HasSubstr("opcode 105 is not one a weights file uses"));
}

}  // namespace

namespace {

class NoTokenizer final : public lmrun::Tokenizer {
 public:
  void fit(std::string_view) override {}
  std::vector<std::int64_t> encode(std::string_view) const override { return {}; }
  std::string decode(const std::vector<std::int64_t>&) const override { return {}; }
  std::int64_t vocab_size() const override { return 3; }
  void save(const std::filesystem::path&) const override {}
  void load(const std::filesystem::path&) override {}
};

// export_model's refusals that come before anything is written, for a model with no layouts,
// no ONNX graphs: the format, the layout and the output folder named.
TEST(Export, RefusesWhatTheModelCannotTakeBeforeWritingAnything) {
  TempDir dir;
  TwoLinears model;
  NoTokenizer tokenizer;
  const ExportSource source{model,
                            [] { return std::make_shared<TwoLinears>(); },
                            tokenizer,
                            dir / "checkpoint",
                            "two_linears",
                            "test",
                            4};
  auto refusal = [&](const std::string& format, const std::string& layout) {
    ExportRequest request;
    request.format = format;
    request.layout = layout;
    request.out = dir / "out";
    return error_of([&] { export_model(source, request); });
  };
  EXPECT_THAT(refusal("onnx", ""), HasSubstr("model 'two_linears' has no ONNX export"));
  EXPECT_THAT(refusal("nanogpt", ""),
              HasSubstr("model 'two_linears' cannot be written as nanogpt (its layouts: none)"));
  EXPECT_THAT(refusal("safetensors", "gpt2"),
              HasSubstr("model 'two_linears' cannot be written as gpt2"));
  EXPECT_THAT(refusal("tflite", ""), HasSubstr("--format must be safetensors, nanogpt or onnx"));
  EXPECT_FALSE(std::filesystem::exists(dir / "out"));
}

}  // namespace

namespace {

// A module of two linears with weights 1..n (by magnitude, alternating sign) and an embedding,
// which pruning leaves alone.
torch::nn::Module prunable() {
  torch::nn::Module module;
  auto a = module.register_module("a", torch::nn::Linear(4, 2));
  auto b = module.register_module("b", torch::nn::Linear(4, 3));
  module.register_module("embedding", torch::nn::Embedding(5, 4));
  torch::NoGradGuard no_grad;
  for (auto* linear : {&a, &b}) {
    at::Tensor& w = (*linear)->weight;
    const at::Tensor values = at::arange(1, w.numel() + 1, at::kFloat);
    w.copy_((values * at::where(values.remainder(2) == 0, -1.0, 1.0)).reshape(w.sizes()));
  }
  return module;
}

TEST(Prune, ZeroesTheSmallestWeightsOfEachLinearLayer) {
  torch::nn::Module module = prunable();
  const PruneReport report = prune_linear_weights(module, 0.5, PruneMode::kUnstructured);
  EXPECT_EQ(report.layers, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(report.weights, 8 + 12);
  EXPECT_EQ(report.zeros, 4 + 6);
  const at::Tensor b = module.named_parameters()["b.weight"].abs().flatten();
  // The six smallest magnitudes (1..6) are gone, 7..12 stay.
  EXPECT_TRUE(at::equal(b.narrow(0, 0, 6), at::zeros({6})));
  EXPECT_TRUE(at::equal(b.narrow(0, 6, 6), at::arange(7, 13, at::kFloat)));
  EXPECT_EQ((module.named_parameters()["embedding.weight"] == 0).sum().item<std::int64_t>(), 0);
}

TEST(Prune, PerRowKeepsTheLargestOfEveryRow) {
  torch::nn::Module module = prunable();
  prune_linear_weights(module, 0.5, PruneMode::kRows);
  const at::Tensor a = module.named_parameters()["a.weight"];  // rows 1..4 and 5..8
  EXPECT_TRUE(at::equal((a != 0).sum(1), at::full({2}, 2, at::kLong)));
  EXPECT_EQ(a[1][3].item<float>(), -8.0f);
  EXPECT_EQ(a[1][0].item<float>(), 0.0f);
}

TEST(Prune, RefusesBadFractionsAndModelsWithoutLinears) {
  torch::nn::Module module = prunable();
  EXPECT_THAT(error_of([&] { prune_linear_weights(module, 1.0, PruneMode::kRows); }),
              HasSubstr("in [0, 1)"));
  torch::nn::Module empty;
  empty.register_module("embedding", torch::nn::Embedding(5, 4));
  EXPECT_THAT(error_of([&] { prune_linear_weights(empty, 0.5, PruneMode::kRows); }),
              HasSubstr("this model has none"));
  EXPECT_THAT(error_of([] { parse_prune_mode("blocks"); }),
              HasSubstr("--prune-mode must be unstructured or rows"));
}

}  // namespace
