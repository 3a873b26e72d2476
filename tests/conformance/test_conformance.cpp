// The conformance suites' own test: the runner on a fixture plugin that breaks each contract on
// request (flawed.cpp). Every check must fail when its contract is broken and pass when none is;
// the runner's own errors (unknown parameters, missing required ones, a plugin of another API)
// must name the problem before any test runs.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/test_support.h"

namespace {

using ::testing::HasSubstr;
using ::testing::IsSupersetOf;
using ::testing::Not;

struct Outcome {
  int exit_code = -1;
  std::string output;
  std::set<std::string> failed;  // "ModelConformance.Causality", from gtest's [  FAILED  ] lines
};

// The runner on the fixture plugin with `args` (each one shell word, no quoting needed).
Outcome run_runner(const std::vector<std::string>& args,
                   const std::string& plugin = LMRUN_CONFORMANCE_FLAWED) {
  std::string command = std::string(LMRUN_CONFORMANCE_RUNNER) + " --plugin '" + plugin + "'";
  for (const std::string& arg : args) command += " '" + arg + "'";
  command += " 2>&1";
  Outcome run;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return run;
  std::array<char, 4096> buffer{};
  while (std::fgets(buffer.data(), buffer.size(), pipe) != nullptr) run.output += buffer.data();
  const int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  // "[  FAILED  ] Plugin/ModelConformance.Causality/flawed_model, where GetParam() = ..."
  const std::string marker = "[  FAILED  ] Plugin/";
  for (std::size_t at = run.output.find(marker); at != std::string::npos;
       at = run.output.find(marker, at + 1)) {
    const std::size_t begin = at + marker.size();
    const std::size_t end = run.output.find('/', begin);
    run.failed.insert(run.output.substr(begin, end - begin));
  }
  return run;
}

Outcome run_flaw(const std::string& kind, const std::string& flaw,
                 std::vector<std::string> more = {}) {
  std::vector<std::string> args = {"--kind", kind, "--set", "flaw=" + flaw};
  args.insert(args.end(), more.begin(), more.end());
  return run_runner(args);
}

// ---------------------------------------------------------------------------------------------
// Correct plugins pass

TEST(Conformance, CorrectPluginsOfEveryKindPass) {
  const Outcome run = run_runner({"--set", "flaw=none", "--set", "patience=3"});
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("lmrun conformance: plugin flawed 0.1.0"));
  for (const char* test :
       {"ModelConformance.DecodeMatchesForward/flawed_model", "ModelConformance.SelectRows/",
        "TokenizerConformance.SaveLoad/flawed_tokenizer", "SamplerConformance.Deterministic/",
        "CallbackConformance.StateRoundTrip/flawed_callback"}) {
    EXPECT_THAT(run.output, HasSubstr("[       OK ] Plugin/" + std::string(test))) << run.output;
  }
  EXPECT_THAT(run.output, Not(HasSubstr("SKIPPED"))) << run.output;
}

// ---------------------------------------------------------------------------------------------
// Each broken contract fails its check

TEST(Conformance, ModelChecksFailForTheFlawsTheyCheck) {
  struct Case {
    std::string flaw;
    std::vector<std::string> failing;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"wrong_shape", {"ModelConformance.Shapes"}, "expected (2, 16, 37) (B, T, vocab_size)"},
      {"peeks", {"ModelConformance.Causality"}, "the model sees the future"},
      {"decode_drifts", {"ModelConformance.DecodeMatchesForward"}, "are not forward's at position"},
      {"select_ignores_rows", {"ModelConformance.SelectRows"}, "a state built for the rows"},
      {"unsaved_state", {"ModelConformance.CheckpointRoundTrip"}, "is not a registered parameter"},
      {"eval_dropout", {"ModelConformance.EvalIsDeterministicWithoutGradients"}, "dropout"},
  };
  for (const Case& c : cases) {
    const Outcome run = run_flaw("model", c.flaw);
    EXPECT_EQ(run.exit_code, 1) << c.flaw << "\n" << run.output;
    EXPECT_THAT(run.failed, IsSupersetOf(c.failing)) << c.flaw << "\n" << run.output;
    EXPECT_THAT(run.output, HasSubstr(c.message)) << c.flaw;
  }
  // The checks that do not concern a flaw pass: a drifting decode breaks nothing else.
  EXPECT_EQ(run_flaw("model", "decode_drifts").failed,
            (std::set<std::string>{"ModelConformance.DecodeMatchesForward"}));
}

TEST(Conformance, TokenizerSamplerAndCallbackChecksFailForTheirFlaws) {
  Outcome run = run_flaw("tokenizer", "drops_spaces");
  EXPECT_EQ(run.failed, (std::set<std::string>{"TokenizerConformance.RoundTrip"})) << run.output;
  EXPECT_THAT(run.output, HasSubstr("decode(encode(text)) is not the text"));
  // The same flaw passes where only ids must round-trip: dropped spaces are not ids.
  EXPECT_EQ(run_flaw("tokenizer", "drops_spaces", {"--option", "exact_round_trip=false"}).exit_code,
            0);
  run = run_flaw("tokenizer", "forgets_on_load");
  EXPECT_EQ(run.failed, (std::set<std::string>{"TokenizerConformance.SaveLoad"})) << run.output;

  run = run_flaw("sampler", "nan");
  EXPECT_THAT(run.failed, IsSupersetOf({"SamplerConformance.ShapeAndValues"})) << run.output;
  EXPECT_THAT(run.output, HasSubstr("apply produced NaN"));
  run = run_flaw("sampler", "unmasks");
  EXPECT_EQ(run.failed, (std::set<std::string>{"SamplerConformance.MaskedTokensStayMasked"}))
      << run.output;
  run = run_flaw("sampler", "noisy");
  EXPECT_EQ(run.failed, (std::set<std::string>{"SamplerConformance.Deterministic"})) << run.output;

  run = run_flaw("callback", "forgets_state", {"--set", "patience=3"});
  EXPECT_EQ(run.failed, (std::set<std::string>{"CallbackConformance.StateRoundTrip"}))
      << run.output;
  EXPECT_THAT(run.output, HasSubstr("saves a different state"));
  run = run_flaw("callback", "logs_loss", {"--set", "patience=3"});
  EXPECT_EQ(run.failed, (std::set<std::string>{"CallbackConformance.StateRoundTrip"}))
      << run.output;
  EXPECT_THAT(run.output, HasSubstr("'loss' is the trainer's own metric"));
}

// ---------------------------------------------------------------------------------------------
// What the runner refuses before any test

TEST(Conformance, BadParametersAndSelectionsAreErrorsNamingThem) {
  auto refused = [](const std::vector<std::string>& args, const std::string& message) {
    const Outcome run = run_runner(args);
    EXPECT_EQ(run.exit_code, 2) << run.output;
    EXPECT_THAT(run.output, HasSubstr(message)) << run.output;
    EXPECT_THAT(run.output, Not(HasSubstr("[==========]"))) << "tests ran after the error";
  };
  refused({"--kind", "model", "--set", "flaws=peeks"},
          "SET flaws=peeks: no selected model declares 'flaws' (did you mean flaw?)");
  refused({"--kind", "model", "--set", "flaw=sideways"},
          "model 'flawed_model': flaw: \"sideways\" is not allowed: expected one of none,");
  refused({"--kind", "callback"},
          "callback 'flawed_callback': required parameter 'patience' (int) is not set");
  refused({"--kind", "callback", "--set", "patience=0"}, "patience: 0 is out of range");
  refused({"--kind", "model", "--name", "transformer"},
          "the plugin registers no model 'transformer' with a conformance suite; it registers: "
          "tokenizer flawed_tokenizer, model flawed_model, callback flawed_callback, "
          "sampler flawed_sampler");
  refused({"--kind", "dataset"}, "there is no conformance suite for datasets");
  refused({"--kind", "model", "--option", "vocab_sise=5"},
          "OPTIONS: no setting 'vocab_sise' (did you mean vocab_size?)");
  refused({"--kind", "model", "--option", "pad_id=40"}, "pad_id 40 is not below vocab_size 37");
  // A plugin built against another API major version is refused as the host refuses it.
  const std::string api_major =
      (lmrun::test::fixture_dir() / "lmrun-fixture_api_major.so").string();
  const Outcome other = run_runner({}, api_major);
  EXPECT_EQ(other.exit_code, 2) << other.output;
  EXPECT_THAT(other.output, HasSubstr("wrong plugin API version: plugin 99.0"));
}

}  // namespace
