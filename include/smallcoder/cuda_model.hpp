// The CUDA half of the public API, included by smallcoder.hpp when SMALLCODER_CUDA is
// defined (build with nvcc): CudaBackend, CudaModel, and the device figures the benchmark reports.
#pragma once

#include "smallcoder/cuda/backend.hpp"
#include "smallcoder/cuda/device_info.hpp"
#include "smallcoder/model.hpp"

namespace smallcoder {

using CudaModel = BasicModel<CudaBackend>;

}  // namespace smallcoder
