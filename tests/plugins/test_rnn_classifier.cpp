// The `rnn_classifier` model through the real loader: logits (B, C) for every cell and pooling,
// padding that never changes the output (whatever the padded ids, in either direction), learning
// a toy task, and the errors.
#include <map>
#include <memory>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/optim/adam.h>

#include "lmrun/model.h"
#include "lmrun/tokenizer.h"
#include "support/test_support.h"

namespace {

using lmrun::Model;
using lmrun::test::error_of;
using ::testing::HasSubstr;

constexpr std::int64_t kVocab = 20;

std::shared_ptr<Model> make(const std::map<std::string, lmrun::Value>& params,
                            std::int64_t classes = 3) {
  torch::manual_seed(5);
  return lmrun::test::plugin_registry().create<Model>(
      "rnn_classifier", lmrun::test::plugin_params(lmrun::Kind::kModel, "rnn_classifier", params),
      lmrun::ModelContext{kVocab, 16, classes, 0});
}

struct Variant {
  std::string cell, pooling;
  bool bidirectional;
};

std::vector<Variant> variants() {
  std::vector<Variant> out;
  for (const char* cell : {"lstm", "gru"}) {
    for (const char* pooling : {"last", "mean", "max", "attention"}) {
      for (bool bidirectional : {true, false}) out.push_back({cell, pooling, bidirectional});
    }
  }
  return out;
}

TEST(RnnClassifier, PaddingNeverChangesTheOutput) {
  for (const auto& v : variants()) {
    SCOPED_TRACE(v.cell + " " + v.pooling + (v.bidirectional ? " bidirectional" : ""));
    auto model = make({{"cell", v.cell},
                       {"pooling", v.pooling},
                       {"bidirectional", v.bidirectional},
                       {"n_layer", std::int64_t{2}},
                       {"n_embd", std::int64_t{8}},
                       {"n_hidden", std::int64_t{6}},
                       {"head_hidden", std::int64_t{5}},
                       {"dropout", 0.3}});
    model->module().eval();
    torch::NoGradGuard no_grad;
    const at::Tensor short_text = at::tensor({4, 7, 1, 9}, at::kLong).view({1, 4});
    const at::Tensor longer = at::tensor({2, 3, 5, 6, 8, 11, 12}, at::kLong).view({1, 7});
    const at::Tensor alone = model->forward(short_text, at::Tensor());
    EXPECT_EQ(alone.sizes(), (std::vector<std::int64_t>{1, 3}));
    // The same text in a batch, padded with arbitrary ids behind a mask.
    at::Tensor batch =
        at::tensor({4, 7, 1, 9, 13, 17, 19, 2, 3, 5, 6, 8, 11, 12}, at::kLong).view({2, 7});
    at::Tensor mask = at::ones({2, 7}, at::kBool);
    mask[0].slice(0, 4, 7).fill_(false);
    const at::Tensor padded = model->forward(batch, mask);
    EXPECT_EQ(padded.sizes(), (std::vector<std::int64_t>{2, 3}));
    EXPECT_TRUE(at::allclose(padded[0], alone[0], 1e-5, 1e-6)) << padded[0] << alone[0];
    EXPECT_TRUE(at::allclose(padded[1], model->forward(longer, at::Tensor())[0], 1e-5, 1e-6));
  }
}

TEST(RnnClassifier, LearnsWhetherATokenOccurs) {
  auto model = make({{"n_embd", std::int64_t{16}}, {"n_hidden", std::int64_t{16}}}, 2);
  torch::optim::Adam adam(model->module().parameters(), torch::optim::AdamOptions(1e-2));
  torch::manual_seed(3);
  const at::Tensor inputs = at::randint(1, kVocab, {64, 10}, at::kLong);
  const at::Tensor targets = (inputs == 7).any(1).to(at::kLong);  // class 1: token 7 occurs
  double first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    adam.zero_grad();
    const at::Tensor loss = at::cross_entropy_loss(model->forward(inputs, at::Tensor()), targets);
    loss.backward();
    adam.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_LT(last, first / 4) << first << " -> " << last;
}

TEST(RnnClassifier, RefusesALanguageModelDatasetAndDecoding) {
  EXPECT_THAT(error_of([] { make({}, 0); }), HasSubstr("needs a classification dataset"));
  auto model = make({});
  EXPECT_THAT(error_of([&] { model->start_decoding(1); }), HasSubstr("does not generate text"));
  EXPECT_THAT(model->summary(), HasSubstr("bidirectional lstm 1x128"));
}

TEST(RnnClassifier, EmbeddingsFromGloveFrozenOrFineTuned) {
  const auto& registry = lmrun::test::plugin_registry();
  auto tokenizer = registry.create<lmrun::Tokenizer>(
      "word", lmrun::test::plugin_params(lmrun::Kind::kTokenizer, "word"), {});
  tokenizer->fit("The king and the queen. Zyxwv handed it over.");
  const std::string glove =
      (lmrun::test::source_dir() / "data" / "glove_6b_50d_top2446" / "glove.6B.50d.top2446.txt")
          .string();
  auto build = [&](std::map<std::string, lmrun::Value> params, bool from_checkpoint = false) {
    params.emplace("embeddings", glove);
    params.emplace("n_embd", std::int64_t{50});
    lmrun::ModelContext context{tokenizer->vocab_size(), 16, 2, tokenizer->special_id("<pad>")};
    context.tokenizer = tokenizer.get();
    context.weights_from_checkpoint = from_checkpoint;
    torch::manual_seed(5);
    return registry.create<Model>(
        "rnn_classifier", lmrun::test::plugin_params(lmrun::Kind::kModel, "rnn_classifier", params),
        context);
  };
  auto row_of = [&](Model& model, const std::string& word) {
    const auto ids = tokenizer->encode(word);
    return model.module().named_parameters()["wte.weight"][ids.at(0)];
  };

  auto model = build({});
  // Words: the king and queen . zyxwv handed it over: all but the made-up one are in the file.
  EXPECT_THAT(model->summary(), HasSubstr(": 8 of 9 words found (88.9%); missing, e.g. 'zyxwv'; "
                                          "fine-tuned"));
  EXPECT_NEAR(row_of(*model, "the")[0].item<double>(), 0.418, 1e-6);
  EXPECT_NEAR(row_of(*model, "handed")[0].item<double>(), -0.4732, 1e-6);  // the last line
  // The made-up word keeps a random row at the vectors' scale (GloVe 50d: std about 0.4, far
  // from the N(0, 1) of a fresh embedding).
  EXPECT_LT(row_of(*model, "zyxwv").std().item<double>(), 0.9);
  EXPECT_TRUE(model->module().named_parameters()["wte.weight"].requires_grad());

  // Frozen: no gradient, so the optimizer never sees it.
  auto frozen = build({{"freeze_embeddings", true}});
  EXPECT_FALSE(frozen->module().named_parameters()["wte.weight"].requires_grad());
  EXPECT_THAT(frozen->summary(), HasSubstr("; frozen"));

  // Weights that a checkpoint replaces: the file is not read (it may be gone).
  auto resumed = build({{"embeddings", std::string("/no/such/file.txt")}}, true);
  EXPECT_THAT(resumed->summary(), HasSubstr("embeddings as trained"));

  EXPECT_THAT(error_of([&] {
                build({{"n_embd", std::int64_t{32}}});
              }),
              HasSubstr("holds 50-dimensional vectors, but model.n_embd = 32"));
  EXPECT_THAT(error_of([&] {
                build({{"embeddings", std::string("/no/such/file.txt")}});
              }),
              HasSubstr("cannot read word vectors /no/such/file.txt"));
  // Vectors for none of the words: nothing to initialise from, so the wrong file.
  lmrun::test::TempDir dir;
  std::string other = "blorp";
  for (int i = 0; i < 50; ++i) other += " 0.5";
  lmrun::test::write_file(dir / "other.txt", other + "\n");
  EXPECT_THAT(error_of([&] {
                build({{"embeddings", (dir / "other.txt").string()}});
              }),
              HasSubstr("holds none of the vocabulary's 9 words"));
}

}  // namespace

namespace {

TEST(RnnClassifier, ActivationsSayWhichArePerPositionAndEndWithForwardsLogits) {
  auto model = make({{"cell", std::string("gru")},
                     {"pooling", std::string("attention")},
                     {"n_embd", std::int64_t{8}},
                     {"n_hidden", std::int64_t{6}},
                     {"head_hidden", std::int64_t{5}}});
  model->module().eval();
  const at::Tensor inputs = at::randint(1, kVocab, {3, 7}, at::kLong);
  at::Tensor mask = at::ones({3, 7}, at::kBool);
  mask[1].narrow(0, 4, 3).fill_(false);
  const auto activations = model->activations(inputs, mask);
  std::vector<std::string> names;
  for (const auto& a : activations) {
    names.push_back(a.name + (a.per_position ? " (B, T)" : " (B)"));
    EXPECT_EQ(a.value.size(0), 3) << a.name;
    if (a.per_position) {
      EXPECT_EQ(a.value.size(1), 7) << a.name;
    }
  }
  EXPECT_EQ(names, (std::vector<std::string>{"embeddings (B, T)", "rnn (B, T)", "attention (B, T)",
                                             "pooled (B)", "hidden (B)", "logits (B)"}));
  EXPECT_TRUE(at::allclose(activations.back().value, model->forward(inputs, mask)));
}

}  // namespace
