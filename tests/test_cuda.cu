// The CUDA backend on a GPU (skipped without one): the cases of support/cuda_cases.hpp.
#include "support/cuda_cases.hpp"
