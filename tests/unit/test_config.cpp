// Experiment files: parsing, `base` inheritance, --set overrides, and every validation error,
// against in-process registrations (no plugin files), with the messages checked.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/emit.h"
#include "config/experiment.h"
#include "config/toml_document.h"
#include "lmrun/optimizer.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using namespace lmrun::host;
using lmrun::test::TempDir;
using lmrun::test::write_file;
using testing::HasSubstr;

namespace {

// A registry of do-nothing factories with realistic parameter declarations.
struct ModelOptions {
  std::int64_t n_layer = 4;
  std::int64_t n_head = 4;
  double dropout = 0.0;
  std::string norm = "layernorm";
  bool bias = true;
};
struct DataOptions {
  fs::path path;
  double val_fraction = 0.1;
  std::int64_t block_size = 64;
};
struct OptimizerOptions {
  double lr = 1e-3;
  std::array<double, 2> betas = {0.9, 0.999};
};
struct SamplerOptions {
  std::int64_t k = 40;
};
struct SgdOptions {
  double momentum = 0.0;
  bool nesterov = false;
};
void add_spec(PluginRegistry& registry, lmrun::Kind kind, const std::string& name,
              std::vector<lmrun::ParamSpec> specs) {
  lmrun::Registration r;
  r.kind = kind;
  r.name = name;
  r.doc = "test " + name;
  r.params = std::move(specs);
  r.factory = [](const lmrun::Params&, const void*) -> std::shared_ptr<void> { return nullptr; };
  registry.add(std::move(r));
}

const PluginRegistry& registry() {
  static PluginRegistry* r = [] {
    auto* reg = new PluginRegistry();
    lmrun::Schema<ModelOptions> model;
    model.add("n_layer", &ModelOptions::n_layer, "blocks").min(1);
    model.add("n_head", &ModelOptions::n_head, "heads").min(1);
    model.add("dropout", &ModelOptions::dropout, "dropout").range(0, 1, true);
    model.add("norm", &ModelOptions::norm, "norm").choices({"layernorm", "rmsnorm"});
    model.add("bias", &ModelOptions::bias, "bias");
    add_spec(*reg, lmrun::Kind::kModel, "transformer", model.specs());
    add_spec(*reg, lmrun::Kind::kModel, "lstm", model.specs());
    lmrun::Schema<DataOptions> data;
    data.add("path", &DataOptions::path, "the corpus").required();
    data.add("val_fraction", &DataOptions::val_fraction, "val share").range(0, 1, true);
    data.add("block_size", &DataOptions::block_size, "window").min(1);
    add_spec(*reg, lmrun::Kind::kDataset, "text_file", data.specs());
    add_spec(*reg, lmrun::Kind::kTokenizer, "char", {});
    lmrun::Schema<OptimizerOptions> optimizer;
    optimizer.add("lr", &OptimizerOptions::lr, "learning rate").min(0, true);
    optimizer.add("betas", &OptimizerOptions::betas, "moments").range(0, 1, true);
    add_spec(*reg, lmrun::Kind::kOptimizer, "adamw", optimizer.specs());
    lmrun::Schema<SamplerOptions> sampler;
    sampler.add("k", &SamplerOptions::k, "keep k").min(1);
    add_spec(*reg, lmrun::Kind::kSampler, "top_k", sampler.specs());
    add_spec(*reg, lmrun::Kind::kCallback, "early_stopping", sampler.specs());
    add_spec(*reg, lmrun::Kind::kScheduler, "cosine", {});
    lmrun::Schema<SgdOptions> sgd;
    sgd.add("momentum", &SgdOptions::momentum, "momentum").range(0, 1, true);
    sgd.add("nesterov", &SgdOptions::nesterov, "nesterov");
    sgd.check([](const SgdOptions& o) {
      if (o.nesterov && o.momentum == 0)
        throw lmrun::Error("nesterov needs momentum > 0", "set momentum = 0.9");
    });
    reg->add<lmrun::Optimizer>(
        "sgd", "test sgd", sgd,
        [](const SgdOptions&, const lmrun::OptimizerContext&) { return nullptr; });
    return reg;
  }();
  return *r;
}

const char* kValid = R"(
[experiment]
name = "tiny"
[data]
type = "text_file"
path = "corpus.txt"
[tokenizer]
type = "char"
[model]
type = "transformer"
n_layer = 2
[optimizer]
type = "adamw"
lr = 3e-4
betas = [0.9, 0.95]
[[callbacks]]
type = "early_stopping"
k = 3
[[callbacks]]
type = "early_stopping"
[generate]
prompt = "ROMEO:"
[[generate.samplers]]
type = "top_k"
k = 5
)";

Experiment resolve_text(const std::string& text, const std::vector<std::string>& overrides = {}) {
  TempDir dir;
  write_file(dir / "exp.toml", text);
  return resolve_experiment(load_document(dir / "exp.toml", overrides), registry());
}

// Every problem's text, one per line, or "" when the experiment is valid.
std::string problems(const std::string& text, const std::vector<std::string>& overrides = {}) {
  try {
    resolve_text(text, overrides);
  } catch (const ConfigError& e) {
    std::string out;
    for (const auto& p : e.problems()) out += p.text() + "\n";
    return out;
  }
  return "";
}

std::string with(const std::string& extra) { return std::string(kValid) + extra; }

}  // namespace

TEST(Config, ValidExperimentResolvesWithDefaults) {
  const Experiment e = resolve_text(kValid);
  EXPECT_EQ(e.experiment.name, "tiny");
  EXPECT_EQ(e.experiment.seed, 1337);
  EXPECT_EQ(e.experiment.out_dir, fs::current_path() / "runs" / "tiny");
  EXPECT_EQ(e.model.type, "transformer");
  EXPECT_EQ(e.model.params.get<std::int64_t>("n_layer"), 2);
  EXPECT_EQ(e.model.params.get<std::int64_t>("n_head"), 4);  // default
  EXPECT_EQ(e.model.params.get<std::string>("norm"), "layernorm");
  EXPECT_DOUBLE_EQ(e.optimizer.params.get<double>("lr"), 3e-4);
  EXPECT_EQ(e.optimizer.params.get<std::vector<double>>("betas"), (std::vector<double>{0.9, 0.95}));
  EXPECT_EQ(e.data.params.get<std::string>("path"), (fs::current_path() / "corpus.txt").string());
  ASSERT_EQ(e.callbacks.size(), 2u);
  EXPECT_EQ(e.callbacks[0].key, "callbacks.0");
  EXPECT_EQ(e.callbacks[0].params.get<std::int64_t>("k"), 3);
  EXPECT_EQ(e.callbacks[1].params.get<std::int64_t>("k"), 40);
  ASSERT_TRUE(e.generate.has_value());
  EXPECT_EQ(e.generate->prompt, "ROMEO:");
  EXPECT_EQ(e.generate->max_new_tokens, 200);
  ASSERT_EQ(e.samplers.size(), 1u);
  EXPECT_EQ(e.samplers[0].params.get<std::int64_t>("k"), 5);
  EXPECT_FALSE(e.scheduler.has_value());
  EXPECT_EQ(e.train.batch_size, 12);
}

TEST(Config, NameDefaultsToTheFileStem) {
  std::string text = kValid;
  text.replace(text.find("name = \"tiny\""), 13, "");
  EXPECT_EQ(resolve_text(text).experiment.name, "exp");
}

TEST(Config, SyntaxErrorHasLineAndColumn) {
  const std::string out = problems("[model]\ntype = \"transformer\"\nn_layer = = 3\n");
  EXPECT_THAT(out, HasSubstr("exp.toml:3:"));
  EXPECT_THAT(out, HasSubstr("TOML syntax error"));
}

TEST(Config, UnknownKeySuggestsTheNearest) {
  std::string text = kValid;
  text.replace(text.find("n_layer = 2"), 11, "n_layers = 2");
  const std::string out = problems(text);
  EXPECT_THAT(out, HasSubstr("exp.toml:11:1: model.n_layers: unknown key (did you mean n_layer?)"));
  EXPECT_THAT(out, HasSubstr("model 'transformer' takes: n_layer, n_head, dropout, norm, bias"));
}

TEST(Config, UnknownTypeListsRegisteredNames) {
  std::string text = kValid;
  text.replace(text.find("type = \"transformer\""), 20, "type = \"transfomer\"");
  const std::string out = problems(text);
  EXPECT_THAT(out, HasSubstr("model.type: unknown model 'transfomer' (did you mean transformer?); "
                             "registered models: lstm, transformer"));
}

TEST(Config, UnknownTypeQuotesPluginsThatFailedToLoad) {
  std::string text = kValid;
  text.replace(text.find("type = \"transformer\""), 20, "type = \"mamba\"");
  TempDir dir;
  write_file(dir / "exp.toml", text);
  try {
    resolve_experiment(load_document(dir / "exp.toml", {}), registry(),
                       {"plugin /p/lmrun-mamba.so: truncated"});
    FAIL() << "expected an error";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(),
                HasSubstr("1 plugin file(s) failed to load: plugin /p/lmrun-mamba.so: truncated"));
  }
}

TEST(Config, WrongTypes) {
  const std::string out =
      problems(with("[train]\nbatch_size = \"twelve\"\ngrad_clip = true\ndevice = 3\n"));
  EXPECT_THAT(out, HasSubstr("train.batch_size: expected an integer, got the string \"twelve\""));
  EXPECT_THAT(out, HasSubstr("train.grad_clip: expected a number, got true"));
  EXPECT_THAT(out, HasSubstr("train.device: expected a string, got the integer 3"));
}

TEST(Config, IntegerIsAcceptedForAFloatButNotTheReverse) {
  EXPECT_EQ(problems(with("[train]\ngrad_clip = 1\n")), "");
  EXPECT_THAT(problems(with("[train]\nbatch_size = 12.5\n")),
              HasSubstr("expected an integer, got the float 12.5"));
}

TEST(Config, OutOfRangeAndChoices) {
  std::string text = kValid;
  text.replace(text.find("n_layer = 2"), 11, "n_layer = 0\ndropout = 1.0\nnorm = \"batchnorm\"");
  const std::string out = problems(text);
  EXPECT_THAT(out, HasSubstr("model.n_layer: 0 is out of range: expected >= 1"));
  EXPECT_THAT(out, HasSubstr("model.dropout: 1.0 is out of range: expected in [0, 1)"));
  EXPECT_THAT(
      out,
      HasSubstr("model.norm: \"batchnorm\" is not allowed: expected one of layernorm, rmsnorm"));
}

TEST(Config, ListElementsAndSizes) {
  std::string text = kValid;
  text.replace(text.find("betas = [0.9, 0.95]"), 19, "betas = [0.9, 1.5]");
  EXPECT_THAT(problems(text), HasSubstr("optimizer.betas: element 1: 1.5 is out of range"));
  text = kValid;
  text.replace(text.find("betas = [0.9, 0.95]"), 19, "betas = [0.9]");
  EXPECT_THAT(problems(text), HasSubstr("optimizer.betas: expected 2 elements, got 1"));
  text = kValid;
  text.replace(text.find("betas = [0.9, 0.95]"), 19, "betas = 0.9");
  EXPECT_THAT(problems(text),
              HasSubstr("optimizer.betas: expected a list of floats, got the float 0.9"));
}

TEST(Config, MissingRequiredKeyAndSection) {
  std::string text = kValid;
  text.replace(text.find("path = \"corpus.txt\""), 19, "");
  text.replace(text.find("[tokenizer]\ntype = \"char\""), 25, "");
  const std::string out = problems(text);
  EXPECT_THAT(out, HasSubstr("data.path: missing required key (the corpus)"));
  EXPECT_THAT(out, HasSubstr("tokenizer: missing section [tokenizer] with a `type`, one of: char"));
}

TEST(Config, MissingType) {
  std::string text = kValid;
  text.replace(text.find("type = \"char\""), 13, "");
  EXPECT_THAT(problems(text),
              HasSubstr("tokenizer.type: missing: the tokenizer to use, one of: char"));
}

TEST(Config, UnknownSectionAndSingleTableCallbacks) {
  std::string out = problems(with("[trian]\nmax_steps = 3\n"));
  EXPECT_THAT(out, HasSubstr("trian: unknown section (did you mean train?)"));
  std::string text = kValid;
  text.replace(text.find("[[callbacks]]"), 13, "[callbacks]");
  text.replace(text.find("[[callbacks]]"), 13, "[other]");
  out = problems(text);
  EXPECT_THAT(
      out,
      HasSubstr("callbacks: expected a list of callback sections: write [[callbacks]] for each"));
}

TEST(Config, ReportsEveryProblemAtOnce) {
  std::string text = kValid;
  text.replace(text.find("n_layer = 2"), 11, "n_layer = -1\nwidth = 3");
  text += "[train]\nbatch_size = 0\n";
  text.replace(text.find("type = \"top_k\""), 14, "type = \"top_q\"");
  try {
    resolve_text(text);
    FAIL() << "expected an error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.problems().size(), 4u) << e.what();
    EXPECT_THAT(e.what(), HasSubstr("invalid experiment (4 problems)"));
  }
}

TEST(Config, CrossParameterChecksRunWhileValidating) {
  std::string text = kValid;
  const std::string adamw = "type = \"adamw\"\nlr = 3e-4\nbetas = [0.9, 0.95]";
  text.replace(text.find(adamw), adamw.size(), "type = \"sgd\"\nnesterov = true");
  EXPECT_THAT(problems(text),
              HasSubstr("optimizer: nesterov needs momentum > 0 (hint: set momentum = 0.9)"));
  EXPECT_EQ(problems(text, {"optimizer.momentum=0.9"}), "");
}

TEST(Config, SweepSectionPointsToLmrunSweep) {
  EXPECT_THAT(problems(with("[sweep]\nmethod = \"grid\"\n")), HasSubstr("lmrun sweep"));
}

// -------------------------------------------------------------------------------------------------
// base = "..."

TEST(ConfigBase, InheritsAndOverridesRelativeToTheNamingFile) {
  TempDir dir;
  write_file(dir / "common" / "base.toml", kValid);
  write_file(dir / "exp" / "small.toml",
             "base = \"../common/base.toml\"\n[model]\nn_layer = 1\n[train]\nmax_steps = 7\n");
  const Experiment e =
      resolve_experiment(load_document(dir / "exp" / "small.toml", {}), registry());
  EXPECT_EQ(e.model.type, "transformer");                     // from the base
  EXPECT_EQ(e.model.params.get<std::int64_t>("n_layer"), 1);  // overridden
  EXPECT_EQ(e.train.max_steps, 7);                            // added
  EXPECT_EQ(e.callbacks.size(), 2u);                          // inherited whole
  EXPECT_EQ(e.experiment.name, "tiny");
}

TEST(ConfigBase, ArraysOfTablesReplaceWhole) {
  TempDir dir;
  write_file(dir / "base.toml", kValid);
  write_file(dir / "child.toml",
             "base = \"base.toml\"\n[[callbacks]]\ntype = \"early_stopping\"\nk = 9\n");
  const Experiment e = resolve_experiment(load_document(dir / "child.toml", {}), registry());
  ASSERT_EQ(e.callbacks.size(), 1u);
  EXPECT_EQ(e.callbacks[0].params.get<std::int64_t>("k"), 9);
}

TEST(ConfigBase, ErrorsPointAtTheFileThatHoldsTheValue) {
  TempDir dir;
  std::string bad = kValid;
  bad.replace(bad.find("n_layer = 2"), 11, "n_layer = 0");
  write_file(dir / "base.toml", bad);
  write_file(dir / "child.toml", "base = \"base.toml\"\n[train]\nmax_steps = 7\n");
  try {
    resolve_experiment(load_document(dir / "child.toml", {}), registry());
    FAIL() << "expected an error";
  } catch (const ConfigError& e) {
    ASSERT_EQ(e.problems().size(), 1u);
    EXPECT_THAT(e.problems()[0].location, HasSubstr("base.toml:11:"));
  }
}

TEST(ConfigBase, MissingBaseAndCycles) {
  TempDir dir;
  write_file(dir / "a.toml", "base = \"nope.toml\"\n");
  try {
    load_document(dir / "a.toml", {});
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("a.toml:1:8: experiment file"));
    EXPECT_THAT(e.what(), HasSubstr("nope.toml does not exist"));
  }
  write_file(dir / "b.toml", "base = \"c.toml\"\n");
  write_file(dir / "c.toml", "base = \"b.toml\"\n");
  try {
    load_document(dir / "b.toml", {});
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("inheritance cycle"));
    EXPECT_THAT(e.what(), HasSubstr("b.toml -> "));
  }
}

// -------------------------------------------------------------------------------------------------
// --set KEY=VALUE

TEST(ConfigOverrides, TypedByTheDeclaredParameter) {
  const Experiment e =
      resolve_text(kValid, {"model.n_layer=6", "optimizer.lr=1", "experiment.name=123",
                            "data.path=other/file.txt", "train.device=cpu",
                            "optimizer.betas=[0.8, 0.9]", "model.bias=false"});
  EXPECT_EQ(e.model.params.get<std::int64_t>("n_layer"), 6);
  EXPECT_DOUBLE_EQ(e.optimizer.params.get<double>("lr"), 1.0);
  EXPECT_EQ(e.experiment.name, "123");
  EXPECT_EQ(e.data.params.get<std::string>("path"),
            (fs::current_path() / "other/file.txt").string());
  EXPECT_EQ(e.train.device, "cpu");
  EXPECT_EQ(e.optimizer.params.get<std::vector<double>>("betas"), (std::vector<double>{0.8, 0.9}));
  EXPECT_FALSE(e.model.params.get<bool>("bias"));
}

TEST(ConfigOverrides, IndexIntoListsAndChangeTypes) {
  const Experiment e =
      resolve_text(kValid, {"callbacks.1.k=11", "generate.samplers.0.k=2", "model.type=lstm"});
  EXPECT_EQ(e.callbacks[1].params.get<std::int64_t>("k"), 11);
  EXPECT_EQ(e.samplers[0].params.get<std::int64_t>("k"), 2);
  EXPECT_EQ(e.model.type, "lstm");
}

// Changing a section's type: the keys that came with the old type and that the new one does not
// take are dropped with a note; keys set with or after the new type are checked as ever.
TEST(ConfigRetype, SetTypeDropsTheOldTypesKeysWithANote) {
  // adamw's betas mean nothing to sgd; lr neither (sgd here declares momentum and nesterov).
  const Experiment e = resolve_text(kValid, {"optimizer.type=sgd", "optimizer.momentum=0.9"});
  EXPECT_EQ(e.optimizer.type, "sgd");
  EXPECT_DOUBLE_EQ(e.optimizer.params.get<double>("momentum"), 0.9);
  EXPECT_FALSE(e.optimizer.params.contains("betas"));
  ASSERT_EQ(e.notes.size(), 1u);
  EXPECT_EQ(e.notes[0],
            "optimizer.type changed from \"adamw\" to \"sgd\" (--set optimizer.type=sgd): "
            "dropped betas, lr, which sgd does not take");
  // A key set for the new type is checked: a typo is still an error, before or after the type.
  EXPECT_THAT(problems(kValid, {"optimizer.type=sgd", "optimizer.momentm=0.9"}),
              HasSubstr("optimizer.momentm: unknown key (did you mean momentum?)"));
  EXPECT_THAT(problems(kValid, {"optimizer.betas=[0.8, 0.9]", "optimizer.type=sgd"}),
              HasSubstr("optimizer.betas: unknown key"));
  // The same type again changes nothing, and keys both types take are kept.
  EXPECT_TRUE(resolve_text(kValid, {"optimizer.type=adamw"}).notes.empty());
  const Experiment lstm = resolve_text(kValid, {"model.type=lstm"});
  EXPECT_EQ(lstm.model.params.get<std::int64_t>("n_layer"), 2);
  EXPECT_TRUE(lstm.notes.empty());
}

TEST(ConfigRetype, InAListEntry) {
  // early_stopping (here) takes k; the scheduler-less sampler list keeps its own keys.
  const Experiment e = resolve_text(kValid, {"generate.samplers.0.type=top_k"});
  EXPECT_EQ(e.samplers[0].params.get<std::int64_t>("k"), 5);
  EXPECT_THAT(problems(kValid, {"callbacks.0.type=nope"}),
              HasSubstr("callbacks.0.type: unknown callback 'nope'"));
}

TEST(ConfigRetype, ABaseChildChangingTheTypeDropsTheBasesKeys) {
  TempDir dir;
  write_file(dir / "base.toml", kValid);
  write_file(
      dir / "child.toml",
      "base = \"base.toml\"\n[optimizer]\ntype = \"sgd\"\nnesterov = true\nmomentum = 0.5\n");
  const Experiment e = resolve_experiment(load_document(dir / "child.toml", {}), registry());
  EXPECT_EQ(e.optimizer.type, "sgd");
  EXPECT_TRUE(e.optimizer.params.get<bool>("nesterov"));
  ASSERT_EQ(e.notes.size(), 1u);
  EXPECT_THAT(e.notes[0], HasSubstr("optimizer.type changed from \"adamw\" to \"sgd\" ("));
  EXPECT_THAT(e.notes[0], HasSubstr("child.toml:3:8): "));
  EXPECT_THAT(e.notes[0], HasSubstr("dropped betas, lr, which sgd does not take"));
  // A key the child itself sets beside the new type is its own: unknown is an error.
  write_file(dir / "typo.toml",
             "base = \"base.toml\"\n[optimizer]\ntype = \"sgd\"\nbetas = [0.9, 0.9]\n");
  EXPECT_THROW(resolve_experiment(load_document(dir / "typo.toml", {}), registry()), ConfigError);
  // A --set changing it back: the base's lr and betas count again, the child's sgd keys go.
  const Experiment back =
      resolve_experiment(load_document(dir / "child.toml", {"optimizer.type=adamw"}), registry());
  EXPECT_DOUBLE_EQ(back.optimizer.params.get<double>("lr"), 3e-4);
  ASSERT_EQ(back.notes.size(), 1u);
  EXPECT_EQ(back.notes[0],
            "optimizer.type changed from \"sgd\" to \"adamw\" (--set optimizer.type=adamw): "
            "dropped momentum, nesterov, which adamw does not take");
}

TEST(ConfigOverrides, ErrorsNameTheOverride) {
  EXPECT_THAT(
      problems(kValid, {"model.n_layer=many"}),
      HasSubstr(
          "--set model.n_layer=many: model.n_layer: expected an integer, got the string \"many\""));
  EXPECT_THAT(problems(kValid, {"model.n_layrs=3"}),
              HasSubstr("model.n_layrs: unknown key (did you mean n_layer?)"));
  auto load_error = [](const std::string& assignment) {
    TempDir dir;
    write_file(dir / "exp.toml", kValid);
    try {
      load_document(dir / "exp.toml", {assignment});
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_THAT(load_error("callbacks.5.k=1"),
              HasSubstr("index 5 is out of range: the list has 2 entries"));
  EXPECT_THAT(load_error("model.n_layer.x=1"), HasSubstr("is a value, not a section"));
  EXPECT_THAT(load_error("novalue"), HasSubstr("expected KEY=VALUE"));
  EXPECT_THAT(load_error("callbacks.0=1"), HasSubstr("set a key inside the entry"));
}

// -------------------------------------------------------------------------------------------------
// The resolved config

TEST(ConfigEmit, ResolvedConfigLoadsBackToTheSameExperiment) {
  const Experiment first = resolve_text(kValid, {"train.grad_clip=0.5"});
  const std::string text = resolved_toml(first, registry());
  EXPECT_THAT(text, HasSubstr("# lmrun resolved experiment, format 1"));
  EXPECT_THAT(
      text, HasSubstr("[model]\ntype = \"transformer\"\nn_layer = 2\nn_head = 4\ndropout = 0.0\n"));
  EXPECT_THAT(text, HasSubstr("[[callbacks]]\ntype = \"early_stopping\"\nk = 3\n"));
  EXPECT_THAT(text, HasSubstr("[[generate.samplers]]\ntype = \"top_k\"\nk = 5\n"));
  EXPECT_THAT(text, HasSubstr("betas = [0.9, 0.95]"));
  EXPECT_THAT(text, HasSubstr("lr = 0.0003"));
  // Equal past the two header lines (the second names the source file, which differs).
  auto body = [](const std::string& t) { return t.substr(t.find('\n', t.find('\n') + 1)); };
  const Experiment second = resolve_text(text);
  EXPECT_EQ(body(resolved_toml(second, registry())), body(text));
}

TEST(ConfigEmit, PluginPathsResolveAgainstTheNamingFile) {
  TempDir dir;
  write_file(dir / "sub" / "exp.toml",
             std::string("[plugins]\npaths = [\"../my_plugins\"]\n") + kValid);
  const TomlDocument doc = load_document(dir / "sub" / "exp.toml", {});
  const auto dirs = plugin_dirs_of(doc);
  ASSERT_EQ(dirs.size(), 1u);
  EXPECT_EQ(dirs[0], fs::canonical(dir.path()) / "my_plugins");
}
