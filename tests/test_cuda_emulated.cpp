// The CUDA backend's kernels and logic on the CPU emulation (support/cuda_emulation.hpp),
// so GPU-less machines (CI) test them too: the cases of support/cuda_cases.hpp, smaller.
#include "support/cuda_emulation.hpp"  // first: it stands in for the CUDA runtime
#include "support/cuda_cases.hpp"
