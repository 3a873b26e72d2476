// c10d process groups for distributed.h. Gloo's device binds to the loopback address for a local
// world, to GLOO_SOCKET_IFNAME's interface when set (as in PyTorch), else to the host's name.
// The groups are held by their concrete types: in LibTorch 1.x they derive from ProcessGroup, in
// 2.x from Backend, and both have these collectives. NCCL (CUDA) exists only in LibTorch builds
// with it (USE_C10D_NCCL); Debian's CPU build has Gloo alone.
#include "train/distributed.h"

#include <cstdlib>
#include <string>

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "lmrun/error.h"

namespace lmrun::host {
namespace {

constexpr std::int64_t kBucketBytes = 25 << 20;  // PyTorch DDP's default bucket size

// An integer variable, or `fallback` when unset; throws naming it when it is not a number.
int env_int(const char* name, int fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  try {
    std::size_t used = 0;
    const int value = std::stoi(text, &used);
    if (used == std::string(text).size()) return value;
  } catch (const std::exception&) {
  }
  throw Error(std::string("environment variable ") + name + "=" + text + " is not an integer");
}

bool is_loopback(const std::string& address) {
  return address == "localhost" || address.rfind("127.", 0) == 0 || address == "::1";
}

}  // namespace

WorldInfo world_from_environment() {
  WorldInfo world;
  world.world_size = env_int("WORLD_SIZE", 1);
  if (world.world_size < 1) throw Error("WORLD_SIZE must be at least 1");
  if (world.world_size == 1) return world;
  const char* hint =
      "set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT as torchrun does, or run "
      "`lmrun --nproc N FILE.toml` to start N local workers";
  if (std::getenv("RANK") == nullptr) throw Error("WORLD_SIZE is set but RANK is not", hint);
  world.rank = env_int("RANK", 0);
  world.local_rank = env_int("LOCAL_RANK", world.rank);
  if (world.rank < 0 || world.rank >= world.world_size) {
    throw Error("RANK=" + std::to_string(world.rank) + " is outside 0.." +
                    std::to_string(world.world_size - 1) +
                    " (WORLD_SIZE=" + std::to_string(world.world_size) + ")",
                hint);
  }
  const char* addr = std::getenv("MASTER_ADDR");
  if (addr == nullptr || *addr == '\0') throw Error("WORLD_SIZE > 1 needs MASTER_ADDR", hint);
  world.master_addr = addr;
  if (std::getenv("MASTER_PORT") == nullptr) throw Error("WORLD_SIZE > 1 needs MASTER_PORT", hint);
  world.master_port = env_int("MASTER_PORT", 0);
  if (world.master_port < 1 || world.master_port > 65535)
    throw Error("MASTER_PORT=" + std::to_string(world.master_port) + " is not a port number");
  return world;
}

struct DataParallel::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#ifdef USE_C10D_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
  c10::Device device = c10::Device(c10::kCPU);
  // Buckets of gradients: each a flat buffer and the parameter indices it holds, in order.
  struct Bucket {
    at::Tensor flat;
    std::vector<std::size_t> members;
  };
  std::vector<Bucket> buckets;
  std::vector<std::int64_t> layout;  // numel of each parameter the buckets were made for

  // Calls f with the group in use.
  template <typename F>
  auto with_group(F&& f) {
#ifdef USE_C10D_NCCL
    if (nccl) return f(*nccl);
#endif
    return f(*gloo);
  }

  template <typename WorkPtr>
  void wait(WorkPtr work, const char* what) {
    try {
      work->wait();
    } catch (const std::exception& e) {
      throw Error(std::string("data-parallel ") + what + " failed: " + e.what(),
                  "another rank has probably failed or stopped; see its output");
    }
  }
};

DataParallel::DataParallel(const WorldInfo& world, c10::Device device,
                           std::chrono::milliseconds timeout)
    : world_(world), impl_(std::make_unique<Impl>()) {
  impl_->device = device;
#ifndef USE_C10D_NCCL
  if (device.is_cuda()) {
    throw Error(
        "data-parallel training on CUDA needs LibTorch's NCCL process group, which this "
        "build does not include",
        "train on the CPU with train.device = \"cpu\" (Gloo)");
  }
#endif
  const std::string where = world.master_addr + ":" + std::to_string(world.master_port);
  try {
    c10d::TCPStoreOptions options;
    options.port = static_cast<std::uint16_t>(world.master_port);
    options.isServer = world.rank == 0;
    options.numWorkers = static_cast<std::size_t>(world.world_size);
    options.waitWorkers = false;  // the group's own rendezvous below waits, with its timeout
    options.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(world.master_addr, options);
    impl_->store = c10::make_intrusive<c10d::PrefixStore>("lmrun", tcp);
#ifdef USE_C10D_NCCL
    if (device.is_cuda()) {
      auto nccl = c10d::ProcessGroupNCCL::Options::create();
      nccl->timeout = timeout;
      impl_->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, world.rank,
                                                                world.world_size, nccl);
      return;
    }
#endif
    auto gloo = c10d::ProcessGroupGloo::Options::create(timeout);
    if (const char* iface = std::getenv("GLOO_SOCKET_IFNAME")) {
      gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(iface));
    } else if (is_loopback(world.master_addr)) {
      gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      gloo->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    gloo->threads = 2;
    impl_->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, world.rank,
                                                              world.world_size, gloo);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(world.rank) + " of " + std::to_string(world.world_size) +
                    " could not join the process group at " + where + ": " + e.what(),
                "check that every rank runs with the same MASTER_ADDR and MASTER_PORT, that the "
                "port is free on the master, and that all WORLD_SIZE ranks start");
  }
}

DataParallel::~DataParallel() = default;

void DataParallel::broadcast_from_rank0(const std::vector<at::Tensor>& tensors) {
  at::NoGradGuard no_grad;
  for (const at::Tensor& t : tensors) {
    // Gloo needs dense contiguous tensors; a view of a non-contiguous one is copied back.
    at::Tensor buffer = t.is_contiguous() ? t : t.contiguous();
    std::vector<at::Tensor> list{buffer};
    c10d::BroadcastOptions options;
    options.rootRank = 0;
    impl_->wait(impl_->with_group([&](auto& group) { return group.broadcast(list, options); }),
                "broadcast");
    if (!buffer.is_same(t)) t.copy_(buffer);
  }
}

void DataParallel::sum_gradients(const std::vector<at::Tensor>& parameters) {
  at::NoGradGuard no_grad;
  std::vector<std::int64_t> layout;
  for (const at::Tensor& p : parameters) {
    if (!p.requires_grad()) {
      layout.push_back(0);
      continue;
    }
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    layout.push_back(p.numel());
  }
  if (layout != impl_->layout) {
    // (Re)build the buckets: consecutive parameters of one dtype, up to kBucketBytes each.
    impl_->buckets.clear();
    impl_->layout = layout;
    std::int64_t bytes = 0;
    at::ScalarType dtype = at::ScalarType::Undefined;
    for (std::size_t i = 0; i < parameters.size(); ++i) {
      if (layout[i] == 0) continue;
      const at::Tensor& g = parameters[i].grad();
      const std::int64_t size = layout[i] * static_cast<std::int64_t>(g.element_size());
      if (impl_->buckets.empty() || bytes + size > kBucketBytes || dtype != g.scalar_type()) {
        impl_->buckets.push_back({at::Tensor(), {}});
        bytes = 0;
        dtype = g.scalar_type();
      }
      impl_->buckets.back().members.push_back(i);
      bytes += size;
    }
    for (auto& bucket : impl_->buckets) {
      std::int64_t n = 0;
      for (std::size_t i : bucket.members) n += layout[i];
      bucket.flat = at::empty({n}, parameters[bucket.members.front()].grad().options());
    }
  }
  for (auto& bucket : impl_->buckets) {
    std::int64_t offset = 0;
    for (std::size_t i : bucket.members) {
      bucket.flat.narrow(0, offset, layout[i]).copy_(parameters[i].grad().reshape({-1}));
      offset += layout[i];
    }
    std::vector<at::Tensor> list{bucket.flat};
    impl_->wait(impl_->with_group([&](auto& group) { return group.allreduce(list); }),
                "gradient all-reduce");
    offset = 0;
    for (std::size_t i : bucket.members) {
      at::Tensor g = parameters[i].grad();
      g.copy_(bucket.flat.narrow(0, offset, layout[i]).view(g.sizes()));
      offset += layout[i];
    }
  }
}

double DataParallel::sum(double value) {
  std::vector<at::Tensor> list{
      at::full({1}, value, at::TensorOptions().dtype(at::kDouble).device(impl_->device))};
  impl_->wait(impl_->with_group([&](auto& group) { return group.allreduce(list); }), "all-reduce");
  return list[0].item<double>();
}

void DataParallel::barrier() {
  impl_->wait(impl_->with_group([](auto& group) { return group.barrier(); }), "barrier");
}

}  // namespace lmrun::host
