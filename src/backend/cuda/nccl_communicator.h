#pragma once
// Communicator over NCCL for one thread per GPU in one process (docs/CUDA.md "Several GPUs"). Only compiled when
// FLUX2_HAVE_CUDA. Collectives are enqueued on the rank's CudaBackend stream, so they order with its kernels and
// are captured into its CUDA graphs like any other op.
#include <memory>

#include "backend/backend.h"
#include "backend/communicator.h"

namespace flux2 {

// A group of `size` ranks, one GPU each; a rank joins (CommunicatorGroup::join) with the CUDA backend its thread
// drives (its GPU and stream), which must outlive the communicator.
std::shared_ptr<CommunicatorGroup> make_nccl_group(int size);

}  // namespace flux2
