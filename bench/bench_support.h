// What every benchmark program shares: an experiment of experiments/ built through the registry
// exactly as `lmrun FILE.toml` builds it, and LibTorch's fp32 matrix-product peak on this machine.
//
//   bench::Built& gpt = bench::build("gpt_tiny");        // loads plugins once, cached by name
//   double loss = gpt.trainer->train_step(1e-3);
//   double peak = bench::matmul_peak_gflops();           // measured once per process
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "config/experiment.h"
#include "registry/plugin_registry.h"
#include "train/pipeline.h"
#include "train/trainer.h"

namespace lmrun::bench {

struct Built {
  host::Experiment experiment;
  host::Pipeline pipeline;
  std::filesystem::path run_dir;  // a temporary folder, removed at exit
  std::unique_ptr<host::Trainer> trainer;
};

// The registry with the built-in plugins, loaded once.
host::PluginRegistry& registry();

// experiments/<name>.toml with its callbacks removed (no checkpoints or early stopping inside a
// benchmark) and `overrides` (as --set) applied, built once per process for each name and
// overrides; its thread setting applied. Throws lmrun::Error.
Built& build(const std::string& name, const std::vector<std::string>& overrides = {});

// Best fp32 GFLOP/s of at::matmul over square sizes 256, 512 and 1024 (measure_matmul_peak),
// measured the first time it is asked (about a second), after checking a product against float64.
double matmul_peak_gflops();

}  // namespace lmrun::bench
