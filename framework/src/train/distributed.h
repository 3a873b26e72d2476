// Data-parallel training over PyTorch's own c10d process groups: Gloo on the CPU (NCCL on CUDA
// where LibTorch has it), joined through a TCPStore as torchrun does, from the same environment
// variables torchrun and Slurm wrappers set.
//
//   const WorldInfo world = world_from_environment();   // RANK, WORLD_SIZE, MASTER_ADDR, ...
//   if (world.distributed()) {
//     DataParallel dp(world, device);                   // joins the group (rank 0 hosts the store)
//     dp.broadcast_from_rank0(tensors);                 // identical starting weights
//     ... loss.backward(); dp.sum_gradients(parameters); optimizer.step(); ...
//   }
//
// The c10d headers stay in distributed.cpp: they are slow to compile.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

namespace lmrun::host {

struct WorldInfo {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;

  bool distributed() const { return world_size > 1; }
  bool is_writer() const { return rank == 0; }  // the one rank that writes logs and checkpoints
};

// From RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; without WORLD_SIZE (or with 1), a
// world of one. Throws lmrun::Error naming the variable when one is missing or out of range.
WorldInfo world_from_environment();

class DataParallel {
 public:
  // Joins the process group; waits up to `timeout` for every rank, and each collective as long
  // (PyTorch's default: rank 0 writes checkpoints while the others wait). Throws lmrun::Error.
  DataParallel(const WorldInfo& world, c10::Device device,
               std::chrono::milliseconds timeout = std::chrono::minutes(30));
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  const WorldInfo& world() const { return world_; }

  // Every tensor takes rank 0's values, in place.
  void broadcast_from_rank0(const std::vector<at::Tensor>& tensors);

  // Each gradient of `parameters` becomes the sum over the ranks. Gradients travel in flat
  // buckets of about 25 MB (kept between steps), one all-reduce per bucket. A parameter without a
  // gradient on this rank takes part with zeros, so that every rank's buckets line up.
  void sum_gradients(const std::vector<at::Tensor>& parameters);

  // The sum of a number over the ranks (token counts, losses, stop flags).
  double sum(double value);

  void barrier();

 private:
  struct Impl;
  WorldInfo world_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lmrun::host
