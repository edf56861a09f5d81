// benchmark_variants with the CUDA backend compiled in (--device cuda): the same tool,
// built by nvcc, with the device memory and bandwidth figures the benchmark asks of a GPU.
#include "bench/cuda_support.hpp"
#include "../benchmark.cpp"
