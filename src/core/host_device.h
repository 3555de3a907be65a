#pragma once
// Marks inline helpers that device kernels and their host references share (one definition for both): host and
// device functions under nvcc, plain functions elsewhere.
#if defined(__CUDACC__)
#define FLUX2_HOST_DEVICE __host__ __device__
#else
#define FLUX2_HOST_DEVICE
#endif
