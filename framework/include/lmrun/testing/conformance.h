// lmrun::testing: the conformance suites, GoogleTest suites that check a plugin against the
// contracts of the SDK's kind headers. lmrun's own plugins run them, and a third party's run the
// same ones with one line of CMake after find_package(lmrun):
//
//   find_package(lmrun CONFIG REQUIRED)
//   lmrun_add_plugin(bigram SOURCES bigram.cpp)
//   lmrun_add_conformance_test(TARGET lmrun_plugin_bigram)          # then: ctest
//
// The full form (LmrunPlugin.cmake):
//
//   lmrun_add_conformance_test(TARGET lmrun_plugin_NAME
//       [KIND model|tokenizer|sampler|callback]   # default: every kind the plugin registers
//       [NAME name]                               # default: every name of those kinds
//       [SET key=value ...]                       # plugin parameters (required ones must be set)
//       [OPTIONS key=value ...]                   # the suites' settings, below
//       [TEST_NAME name] [LABELS label ...])      # the ctest entry: conformance.NAME,
//       "conformance"
//
// Each call is one ctest entry running the runner, `lmrun_conformance` (built once per project
// from the installed sources), on the plugin's file, loaded as lmrun loads it (plugin_file.h:
// dlopen, the entry point, the API version and build checks, registration). A SET value is text
// converted by the parameter's declared type and checked against its range and choices, as the
// host checks TOML; a relative path resolves against the folder of the CMakeLists.txt that calls.
//
// What the suites check, per registration of each kind (a skipped check says why):
//
//   model      Shapes: forward gives (B, T, vocab_size), or (B, num_classes) for a classifier,
//              finite, also with a right-padding mask. Causality (language models): changing
//              the token at position j never changes the logits before j. DecodeMatchesForward
//              (when can_decode()): a prompt, then tokens one at a time (and three at a time),
//              give forward()'s logits at each position, for batch 1 and batch_size.
//              SelectRows (when DecodeState::select_rows returns true): a state narrowed or
//              reordered by it decodes like states built for those rows alone. CheckpointRoundTrip:
//              parameters and buffers written by name as the host writes model.pt, read into a
//              fresh, differently seeded instance, give identical outputs.
//              EvalIsDeterministicWithoutGradients: eval() forward under NoGradGuard is bitwise
//              repeatable and builds no graph; TrainingForwardIsDifferentiable: train() forward
//              does, and backward reaches the parameters. Activations end with forward's logits.
//   tokenizer  RoundTrip: fitted on varied text (ASCII, accents, CJK, emoji, tabs, newlines,
//              runs of spaces), every id is below vocab_size() and decode(encode(t)) == t
//              (with exact_round_trip=false, for tokenizers that normalise text:
//              encode(decode(ids)) == ids). SaveLoad: a fresh instance loaded from save() has the
//              same vocab_size, ids, texts and special ids. FitIsDeterministic.
//   sampler    ShapeAndValues: (B, V) in, (B, V) out, no NaN or +inf, a finite logit left in
//              every row. MaskedTokensStayMasked: a -inf logit stays -inf (chains rely on it).
//              Deterministic: two instances fed the same logits with generators of one seed
//              give identical outputs, call after call.
//   callback   StateRoundTrip: driven through a scripted run by a fake trainer (events in the
//              trainer's order, checkpoints written, log_metric refusing the trainer's names),
//              cut at several steps: a fresh instance given load_state(save_state()) saves the
//              same state, then asks the trainer for the same stops, checkpoints, removals,
//              metrics and learning rates as an uninterrupted run, and ends in the same state.
//              A callback whose decisions follow the wall clock cannot pass this.
//
// OPTIONS (SuiteOptions below): vocab_size, sequence_length, num_classes, pad_id: the
// ModelContext (and SamplerContext) the factories get; batch_size; seed; tolerance (decoding
// against forward, relative to the logits' scale); exact_round_trip and corpus (a text file the
// tokenizers are fitted on besides the built-in samples).
//
// Kinds without a suite (datasets, optimizers, schedulers, metrics) are listed and skipped; a
// file with nothing to check, a KIND or NAME it does not register, or a SET key no selected
// registration declares is an error before any test runs.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "lmrun/registry.h"
#include "lmrun/schema.h"
#include "lmrun/testing/plugin_file.h"

namespace lmrun::testing {

// ---------------------------------------------------------------------------------------------
// The suites' settings (OPTIONS key=value)

struct SuiteOptions {
  std::int64_t vocab_size = 37;       // models and samplers: the vocabulary (no multiple of 8)
  std::int64_t sequence_length = 16;  // models: ModelContext::sequence_length and T of the batches
  std::int64_t num_classes = 0;       // models: > 0 makes the subject a classifier
  std::int64_t pad_id = -1;           // models: ModelContext::pad_id; never a real token here
  std::int64_t batch_size = 2;        // rows of the test batches
  std::int64_t seed = 1337;           // torch::manual_seed before each construction, and data
  double tolerance = 1e-4;            // decode vs forward: |a - b| <= tolerance * (1 + max|b|)
  bool exact_round_trip = true;       // tokenizers: decode(encode(t)) == t
  std::filesystem::path corpus;       // tokenizers: more text to fit on; empty: samples only
};

inline Schema<SuiteOptions> suite_options_schema() {
  Schema<SuiteOptions> schema;
  schema.add("vocab_size", &SuiteOptions::vocab_size, "vocabulary of models and samplers").min(2);
  schema.add("sequence_length", &SuiteOptions::sequence_length, "model context and batch length")
      .min(2);
  schema.add("num_classes", &SuiteOptions::num_classes, "> 0: the model is a classifier").min(0);
  schema.add("pad_id", &SuiteOptions::pad_id, "the tokenizer's <pad> id; -1: none").min(-1);
  schema.add("batch_size", &SuiteOptions::batch_size, "rows of the test batches").min(2);
  schema.add("seed", &SuiteOptions::seed, "seed of weights and test data").min(0);
  schema.add("tolerance", &SuiteOptions::tolerance, "decode against forward, relative").min(0);
  schema.add("exact_round_trip", &SuiteOptions::exact_round_trip,
             "tokenizers: decode(encode(text)) gives the text back");
  schema.add("corpus", &SuiteOptions::corpus, "tokenizers: a text file to fit on as well");
  schema.check([](const SuiteOptions& o) {
    if (o.pad_id >= o.vocab_size) {
      throw Error("pad_id " + std::to_string(o.pad_id) + " is not below vocab_size " +
                  std::to_string(o.vocab_size));
    }
  });
  return schema;
}

// OPTIONS text ("vocab_size=65") as SuiteOptions; throws lmrun::Error naming the bad one.
inline SuiteOptions suite_options_from_text(const std::vector<std::string>& assignments) {
  Registration options;  // the suites' settings, checked like a plugin's parameters
  options.name = "conformance";
  options.params = suite_options_schema().specs();
  Params params;
  for (const std::string& assignment : assignments) {
    const auto [key, text] = split_assignment(assignment);
    std::vector<std::string> names;
    const ParamSpec* spec = nullptr;
    for (const ParamSpec& s : options.params) {
      names.push_back(s.name);
      if (s.name == key) spec = &s;
    }
    if (spec == nullptr) {
      throw Error("OPTIONS: no setting '" + key + "'" + did_you_mean(key, names) +
                  "; settings: " + join(names));
    }
    params.set(key, value_from_text(*spec, text));
  }
  try {
    return suite_options_schema().parse(params);
  } catch (const Error& e) {
    throw e.with_context("OPTIONS");
  }
}

// ---------------------------------------------------------------------------------------------
// What the suites run on

// One registration of the plugin under test, with the params its objects are made from.
struct Subject {
  Kind kind = Kind::kModel;
  std::string name;
  Params params;  // declared defaults, then SET
  SuiteOptions options;
  const Registry* registry = nullptr;  // holds the registration; lives until exit

  // Makes one object, as the host would from these params.
  template <class Interface>
  std::shared_ptr<Interface> create(const typename KindTraits<Interface>::Context& context) const {
    return registry->create<Interface>(name, params, context);
  }
};

// gtest's name of an instantiation: the registration's name, made of [A-Za-z0-9_].
inline std::string test_name(const Subject& subject) {
  std::string out;
  for (char c : subject.name) {
    const bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    out += word ? c : '_';
  }
  return out;
}

// How gtest prints a subject in a failure: "model 'transformer' {n_layer=2, ...}".
inline void PrintTo(const Subject& subject, std::ostream* out) {
  *out << kind_name(subject.kind) << " '" << subject.name << "' {";
  bool first = true;
  for (const auto& [key, value] : subject.params.values()) {
    *out << (first ? "" : ", ") << key << "=" << format_value(value);
    first = false;
  }
  *out << "}";
}

// The kinds that have a suite.
inline bool has_suite(Kind kind) {
  return kind == Kind::kModel || kind == Kind::kTokenizer || kind == Kind::kSampler ||
         kind == Kind::kCallback;
}

// The subjects of this run, set once by the runner before gtest registers the suites (the
// suites are instantiated over subjects_of(kind) when InitGoogleTest runs).
inline std::vector<Subject>& subjects() {
  static std::vector<Subject> all;
  return all;
}

inline std::vector<Subject> subjects_of(Kind kind) {
  std::vector<Subject> out;
  for (const Subject& s : subjects()) {
    if (s.kind == kind) out.push_back(s);
  }
  return out;
}

// The registrations of `registry` to check: those of `kind` (every kind with a suite when
// empty) named `name` (every name when empty), each with `sets` applied to the params it
// declares. Throws lmrun::Error when nothing is selected, when a SET key is declared by no
// selected registration, and for any bad value or missing required parameter.
inline std::vector<Subject> select_subjects(const MemoryRegistry& registry, const std::string& kind,
                                            const std::string& name,
                                            const std::vector<std::string>& sets,
                                            const SuiteOptions& options) {
  std::optional<Kind> wanted;
  if (!kind.empty()) {
    wanted = parse_kind(kind);
    if (!wanted) throw Error("KIND " + kind + " is not a plugin kind");
    if (!has_suite(*wanted)) {
      throw Error("KIND " + kind + ": there is no conformance suite for " + kind + "s",
                  "suites exist for models, tokenizers, samplers and callbacks");
    }
  }
  std::vector<std::string> registered;
  std::vector<Subject> out;
  std::vector<bool> key_used(sets.size(), false);
  for (const Registration* r : registry.all()) {
    registered.push_back(std::string(kind_name(r->kind)) + " " + r->name);
    if (!has_suite(r->kind) || (wanted && r->kind != *wanted)) continue;
    if (!name.empty() && r->name != name) continue;
    std::vector<std::string> own;  // the SET assignments this registration declares
    for (std::size_t i = 0; i < sets.size(); ++i) {
      const std::string key = split_assignment(sets[i]).first;
      for (const ParamSpec& spec : r->params) {
        if (spec.name == key) {
          own.push_back(sets[i]);
          key_used[i] = true;
        }
      }
    }
    out.push_back(Subject{r->kind, r->name, params_from_text(*r, own), options, &registry});
  }
  const std::string what =
      (kind.empty() ? std::string("registration") : kind) + (name.empty() ? "" : " '" + name + "'");
  if (out.empty()) {
    throw Error("the plugin registers no " + what + " with a conformance suite; it registers: " +
                (registered.empty() ? "nothing" : join(registered)));
  }
  for (std::size_t i = 0; i < sets.size(); ++i) {
    if (!key_used[i]) {
      std::vector<std::string> declared;
      for (const Subject& s : out) {
        for (const ParamSpec& spec : registry.find(s.kind, s.name)->params)
          declared.push_back(spec.name);
      }
      const std::string key = split_assignment(sets[i]).first;
      throw Error("SET " + sets[i] + ": no selected " + what + " declares '" + key + "'" +
                  did_you_mean(key, declared));
    }
  }
  return out;
}

}  // namespace lmrun::testing
