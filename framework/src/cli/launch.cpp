// The local launcher of launch.h: posix_spawn per rank, a free port from the kernel, waitpid.
#include "cli/launch.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <thread>

#include "lmrun/error.h"
#include "util/process.h"

namespace lmrun::host {
namespace {

volatile std::sig_atomic_t g_forward = 0;
extern "C" void on_launcher_signal(int signal) { g_forward = signal; }

// A port that was free a moment ago: bound to port 0, the kernel's choice, then released.
int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error(std::string("cannot open a socket: ") + std::strerror(errno));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    const std::string reason = std::strerror(errno);
    close(fd);
    throw Error("cannot find a free port on 127.0.0.1: " + reason,
                "set MASTER_PORT and start the ranks yourself");
  }
  close(fd);
  return ntohs(address.sin_port);
}

}  // namespace

int launch_local_workers(int nproc, const std::vector<std::string>& args) {
  if (nproc < 1) throw Error("--nproc must be at least 1");
  if (std::getenv("WORLD_SIZE") != nullptr) {
    throw Error("--nproc starts its own workers, but WORLD_SIZE is already set",
                "use one: --nproc on a plain machine, or the launcher's variables (torchrun, "
                "Slurm) without --nproc");
  }
  const int port = free_port();
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  std::map<pid_t, int> ranks;  // running worker -> rank
  auto stop_all = [&] {
    for (const auto& [pid, rank] : ranks) kill(pid, SIGTERM);
  };
  // SIGINT and SIGTERM to the launcher (a scheduler stopping the job, a script's kill -INT) go on
  // to every worker, so that none is left training on its own; the workers start with both at
  // their defaults (spawn_process), even when the launcher's SIGINT was ignored (a background
  // job), and stop together at a step's end. Installed before the first worker starts.
  struct sigaction action {
  }, old_int{}, old_term{};
  action.sa_handler = on_launcher_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, &old_int);
  sigaction(SIGTERM, &action, &old_term);
  for (int rank = 0; rank < nproc; ++rank) {
    std::vector<std::string> extra = {
        "RANK=" + std::to_string(rank), "LOCAL_RANK=" + std::to_string(rank),
        "WORLD_SIZE=" + std::to_string(nproc), "MASTER_ADDR=127.0.0.1",
        "MASTER_PORT=" + std::to_string(port)};
    if (std::getenv("OPENBLAS_NUM_THREADS") == nullptr) {
      extra.push_back("OPENBLAS_NUM_THREADS=" +
                      std::to_string(std::max(1u, cores / static_cast<unsigned>(nproc))));
    }
    pid_t pid = 0;
    const int error = spawn_process(args, environment_with(extra), {}, pid);
    if (error != 0) {
      stop_all();
      throw Error("cannot start worker " + std::to_string(rank) + ": " + std::strerror(error));
    }
    ranks[pid] = rank;
  }
  int exit_code = 0;
  while (!ranks.empty()) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, 0);
    if (g_forward != 0) {
      for (const auto& [worker, rank] : ranks) kill(worker, g_forward);
      if (exit_code == 0) exit_code = 128 + g_forward;
      g_forward = 0;
    }
    if (pid < 0) {
      if (errno == EINTR) continue;
      std::cerr << "lmrun: lost track of " << ranks.size() << " worker(s): " << std::strerror(errno)
                << "\n";
      if (exit_code == 0) exit_code = 1;
      break;
    }
    const auto it = ranks.find(pid);
    if (it == ranks.end()) continue;
    const int rank = it->second;
    ranks.erase(it);
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok && exit_code == 0) {
      exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
      std::cerr << "lmrun: rank " << rank << " of " << nproc << " failed ("
                << (WIFEXITED(status) ? "exit code " + std::to_string(WEXITSTATUS(status))
                                      : "signal " + std::to_string(WTERMSIG(status)))
                << "); stopping the other " << ranks.size() << "\n";
      stop_all();
    }
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  return exit_code;
}

}  // namespace lmrun::host
