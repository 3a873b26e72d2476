// Shared benchmark set-up: see bench_support.h.
#include "bench_support.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <sstream>

#include <unistd.h>

#include <ATen/ops/matmul.h>
#include <ATen/ops/randn.h>

#include "config/toml_document.h"
#include "lmrun/error.h"
#include "registry/plugin_loader.h"
#include "train/peak.h"

namespace fs = std::filesystem;

namespace lmrun::bench {
namespace {

fs::path temp_root() {
  static const fs::path root = [] {
    fs::path dir = fs::temp_directory_path() / ("lmrun-bench-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(fs::temp_directory_path() / ("lmrun-bench-" + std::to_string(::getpid())), ec);
    });
    return dir;
  }();
  return root;
}

}  // namespace

host::PluginRegistry& registry() {
  static host::PluginRegistry* r = [] {
    auto* reg = new host::PluginRegistry();
    host::PluginLoader loader(*reg);
    loader.load_directory(host::builtin_plugin_dir());
    return reg;
  }();
  return *r;
}

Built& build(const std::string& name, const std::vector<std::string>& overrides) {
  static std::map<std::string, std::unique_ptr<Built>> built;
  std::string key = name;
  for (const auto& o : overrides) key += " " + o;
  auto it = built.find(key);
  if (it != built.end()) return *it->second;
  const fs::path source = LMRUN_SOURCE_DIR;
  fs::current_path(source);  // experiments' data paths are relative to the repository root
  auto b = std::make_unique<Built>();
  b->experiment = host::resolve_experiment(
      host::load_document(source / "experiments" / (name + ".toml"), overrides), registry());
  b->experiment.callbacks.clear();
  host::configure_runtime(b->experiment.train.threads);
  b->run_dir = temp_root() / (name + "-" + std::to_string(built.size()));
  fs::create_directories(b->run_dir);
  b->pipeline =
      host::build_pipeline(b->experiment, registry(), host::PipelineOptions{b->run_dir, {}, true});
  static std::ostringstream quiet;
  b->trainer = std::make_unique<host::Trainer>(b->experiment, b->pipeline, b->run_dir,
                                               host::CheckpointProvenance{}, quiet);
  return *built.emplace(key, std::move(b)).first->second;
}

double matmul_peak_gflops() {
  static const double peak = [] {
    at::Tensor check_a = at::randn({128, 128}), check_b = at::randn({128, 128});
    at::Tensor reference = at::matmul(check_a.to(at::kDouble), check_b.to(at::kDouble));
    if (!at::matmul(check_a, check_b).to(at::kDouble).allclose(reference, 1e-3, 1e-2)) {
      throw Error("bench: at::matmul disagrees with the float64 reference");
    }
    double best = 0.0;
    for (std::int64_t n : {256, 512, 1024}) {
      best = std::max(best,
                      host::measure_matmul_peak(at::kCPU, at::kFloat, n, n < 1024 ? 40 : 10, 0.0));
    }
    return best;
  }();
  return peak;
}

}  // namespace lmrun::bench
