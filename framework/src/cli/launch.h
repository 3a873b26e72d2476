// `lmrun --nproc N ...`: N local workers of the same command, as torchrun --nproc_per_node starts
// them: each with RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR=127.0.0.1 and a free MASTER_PORT, and
// its share of the cores for BLAS threads (unless OPENBLAS_NUM_THREADS is set). When one worker
// fails, the others are stopped.
#pragma once

#include <string>
#include <vector>

namespace lmrun::host {

// `args`: the command line to run in each worker, argv[0] first, without --nproc. Returns the
// exit code: 0 when every worker succeeded, else the first failure's (1 for a signal).
int launch_local_workers(int nproc, const std::vector<std::string>& args);

}  // namespace lmrun::host
