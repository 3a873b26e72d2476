// Start-up and memory of whole processes: LibTorch's own load floor (libtorch_floor, which only
// loads LibTorch), `lmrun --version`, and a gpt_tiny run's time from process start to its first
// training step (summary.json's startup_seconds) with its peak RSS. Ratios are to the floor, all
// measured in this run.
//
//   build/bin/bench_startup
#include <benchmark/benchmark.h>

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

// Runs argv with stdout and stderr discarded; wall time and the child's peak RSS.
Exit run(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  Exit e;
  const auto start = std::chrono::steady_clock::now();
  pid_t pid = 0;
  if (posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ) == 0) {
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

void report(benchmark::State& state, const std::string& name, double seconds, double rss) {
  state.counters["seconds"] = seconds;
  state.counters["peak RSS MiB"] = rss;
  results[name] = seconds;
  results[name + " rss"] = rss;
}

}  // namespace

static void BM_LibTorchFloor(benchmark::State& state) {
  Exit e;
  for (auto _ : state) {
    e = run({kBin + "/libtorch_floor"});
    state.SetIterationTime(e.seconds);
  }
  if (e.status != 0) state.SkipWithError("libtorch_floor failed");
  report(state, "floor", e.seconds, e.peak_rss_mib);
}
BENCHMARK(BM_LibTorchFloor)->UseManualTime()->Iterations(5)->Unit(benchmark::kMillisecond);

static void BM_LmrunVersion(benchmark::State& state) {
  Exit e;
  for (auto _ : state) {
    e = run({kBin + "/lmrun", "--version"});
    state.SetIterationTime(e.seconds);
  }
  if (e.status != 0) state.SkipWithError("lmrun --version failed");
  report(state, "version", e.seconds, e.peak_rss_mib);
}
BENCHMARK(BM_LmrunVersion)->UseManualTime()->Iterations(5)->Unit(benchmark::kMillisecond);

// gpt_tiny for 3 steps: the time to the first step comes from the run's own summary.json.
static void BM_GptTinyFirstStep(benchmark::State& state) {
  fs::current_path(LMRUN_SOURCE_DIR);
  Exit e;
  double first_step = 0;
  for (auto _ : state) {
    e = run({kBin + "/lmrun", "experiments/gpt_tiny.toml", "--force", "--set",
             "experiment.out_dir=\"" + kRun.string() + "\"", "--set", "train.max_steps=3", "--set",
             "train.eval_batches=1", "--set", "scheduler.warmup_steps=1", "--set",
             "generate.max_new_tokens=0"});
    first_step = summary_number(kRun / "summary.json", "startup_seconds");
    state.SetIterationTime(first_step > 0 ? first_step : e.seconds);
  }
  if (e.status != 0 || first_step <= 0) state.SkipWithError("the gpt_tiny run failed");
  report(state, "first step", first_step, e.peak_rss_mib);
  std::error_code ec;
  fs::remove_all(kRun, ec);
}
BENCHMARK(BM_GptTinyFirstStep)->UseManualTime()->Iterations(5)->Unit(benchmark::kMillisecond);

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
  return 0;
}
