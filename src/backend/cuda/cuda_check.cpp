#include "backend/cuda/cuda_check.h"

#include "core/error.h"

namespace flux2::cuda {

void fail_call(const char* library, const char* expr, const char* file, int line, const std::string& detail) {
    fail(library, " error in ", expr, " (", file, ":", line, "): ", detail);
}

}  // namespace flux2::cuda
