// Start-up and memory of whole processes: LibTorch's own load floor (libtorch_floor, which only
// loads LibTorch), `lmrun --version`, and a gpt_tiny run's time from process start to its first
// training step (summary.json's startup_seconds) with its peak RSS. Ratios are to the floor, all
// measured in this run. And the plugin probe's cost: `lmrun plugins` loading every built-in plugin
// with each file first loaded in a forked child (no verdict cache) against the same with the
// verdicts cached, as every run after the first finds them.
//
//   build/bin/bench_startup
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace fs = std::filesystem;

namespace {

struct Exit {
  int status = -1;
  double seconds = 0;
  double peak_rss_mib = 0;
};

// Runs argv with stdout and stderr discarded, the environment plus `env` ("NAME=value"); wall
// time and the child's peak RSS.
Exit run(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  for (char** e = environ; *e != nullptr; ++e) envp.push_back(*e);
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  Exit e;
  const auto start = std::chrono::steady_clock::now();
  pid_t pid = 0;
  if (posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data()) == 0) {
    int status = 0;
    rusage usage{};
    wait4(pid, &status, 0, &usage);
    e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    e.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    e.peak_rss_mib = static_cast<double>(usage.ru_maxrss) / 1024.0;
  }
  posix_spawn_file_actions_destroy(&actions);
  return e;
}

// A number from summary.json ("key": value), or -1.
double summary_number(const fs::path& file, const std::string& key) {
  std::ifstream in(file);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto at = text.find("\"" + key + "\": ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + key.size() + 4));
}

const std::string kBin = LMRUN_BINARY_DIR;
const fs::path kRun =
    fs::temp_directory_path() / ("lmrun-bench-startup-" + std::to_string(getpid()));

std::map<std::string, double> results;  // name -> median seconds (or MiB)

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? -1 : v[v.size() / 2];
}

// Every iteration's time and peak RSS; the medians are reported. Any failed iteration fails the
// benchmark: a median over runs of which one failed would hide it.
struct Samples {
  std::vector<double> seconds, rss;
  bool failed = false;

  void add(benchmark::State& state, const Exit& e, double seconds_of_interest) {
    failed = failed || e.status != 0 || seconds_of_interest <= 0;
    seconds.push_back(seconds_of_interest);
    rss.push_back(e.peak_rss_mib);
    state.SetIterationTime(seconds_of_interest > 0 ? seconds_of_interest : e.seconds);
  }

  void report(benchmark::State& state, const std::string& name, const char* failure) const {
    if (failed) {
      state.SkipWithError(failure);
      return;
    }
    const double s = median(seconds), r = median(rss);
    state.counters["median seconds"] = s;
    state.counters["median peak RSS MiB"] = r;
    results[name] = s;
    results[name + " rss"] = r;
  }
};

}  // namespace

static void BM_LibTorchFloor(benchmark::State& state) {
  Samples samples;
  for (auto _ : state) {
    const Exit e = run({kBin + "/libtorch_floor"});
    samples.add(state, e, e.seconds);
  }
  samples.report(state, "floor", "libtorch_floor failed");
}
BENCHMARK(BM_LibTorchFloor)->UseManualTime()->Iterations(5)->Unit(benchmark::kMillisecond);

static void BM_LmrunVersion(benchmark::State& state) {
  Samples samples;
  for (auto _ : state) {
    const Exit e = run({kBin + "/lmrun", "--version"});
    samples.add(state, e, e.seconds);
  }
  samples.report(state, "version", "lmrun --version failed");
}
BENCHMARK(BM_LmrunVersion)->UseManualTime()->Iterations(5)->Unit(benchmark::kMillisecond);

// gpt_tiny for 3 steps: the time to the first step comes from the run's own summary.json,
// removed before each run so that a failed run cannot report its predecessor's figure.
static void BM_GptTinyFirstStep(benchmark::State& state) {
  fs::current_path(LMRUN_SOURCE_DIR);
  Samples samples;
  for (auto _ : state) {
    std::error_code ec;
    fs::remove(kRun / "summary.json", ec);
    const Exit e = run({kBin + "/lmrun", "experiments/gpt_tiny.toml", "--force", "--set",
                        "experiment.out_dir=\"" + kRun.string() + "\"", "--set",
                        "train.max_steps=3", "--set", "train.eval_batches=1", "--set",
                        "scheduler.warmup_steps=1", "--set", "generate.max_new_tokens=0"});
    samples.add(state, e, summary_number(kRun / "summary.json", "startup_seconds"));
  }
  samples.report(state, "first step", "the gpt_tiny run failed");
  std::error_code ec;
  fs::remove_all(kRun, ec);
}
BENCHMARK(BM_GptTinyFirstStep)->UseManualTime()->Iterations(5)->Unit(benchmark::kMillisecond);

// `lmrun plugins`: every built-in plugin loaded, each file probed in a forked child first
// (LMRUN_PLUGIN_CACHE=off keeps no verdicts) ...
static void BM_PluginsProbed(benchmark::State& state) {
  Samples samples;
  for (auto _ : state) {
    const Exit e = run({kBin + "/lmrun", "plugins"}, {"LMRUN_PLUGIN_CACHE=off"});
    samples.add(state, e, e.seconds);
  }
  samples.report(state, "probed", "lmrun plugins (probing) failed");
}
BENCHMARK(BM_PluginsProbed)->UseManualTime()->Iterations(5)->Unit(benchmark::kMillisecond);

// ... and with the verdicts cached (a first, unmeasured run writes the cache).
static void BM_PluginsCached(benchmark::State& state) {
  const fs::path cache = kRun.string() + "-probes.tsv";
  const std::string env = "LMRUN_PLUGIN_CACHE=" + cache.string();
  run({kBin + "/lmrun", "plugins"}, {env});
  Samples samples;
  for (auto _ : state) {
    const Exit e = run({kBin + "/lmrun", "plugins"}, {env});
    samples.add(state, e, e.seconds);
  }
  samples.report(state, "cached", "lmrun plugins (cached verdicts) failed");
  std::error_code ec;
  fs::remove(cache, ec);
}
BENCHMARK(BM_PluginsCached)->UseManualTime()->Iterations(5)->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  if (results.count("floor") && results.count("first step") && results["floor"] > 0) {
    std::printf(
        "ratio: lmrun reaches gpt_tiny's first training step %.2f s after start = %.2fx the "
        "%.2f s LibTorch alone takes to load (lmrun --version: %.2f s)\n",
        results["first step"], results["first step"] / results["floor"], results["floor"],
        results["version"]);
    std::printf(
        "ratio: peak RSS of a short gpt_tiny run %.0f MiB = %.2fx the %.0f MiB of loading LibTorch "
        "alone\n",
        results["first step rss"], results["first step rss"] / results["floor rss"],
        results["floor rss"]);
  }
  if (results.count("probed") && results.count("cached") && results["cached"] > 0) {
    std::printf(
        "ratio: lmrun plugins takes %.2f s probing every plugin file in a child = %.2fx the "
        "%.2f s with the verdicts cached\n",
        results["probed"], results["probed"] / results["cached"], results["cached"]);
  }
  return 0;
}
