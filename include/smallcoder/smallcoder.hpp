// smallcoder: a header-only C++17 runtime for the SmallCoder code models.
// Include this one header for the whole public API. Define SMALLCODER_CUDA (and compile
// with nvcc) to add the CUDA backend: smallcoder::CudaBackend, smallcoder::CudaModel.
#pragma once

#include "smallcoder/config.hpp"
#include "smallcoder/error.hpp"
#include "smallcoder/generate/generator.hpp"
#include "smallcoder/generate/sampler.hpp"
#include "smallcoder/generate/session.hpp"
#include "smallcoder/model/load.hpp"
#include "smallcoder/model.hpp"
#include "smallcoder/text/sentencepiece.hpp"

#if defined(SMALLCODER_CUDA)
#include "smallcoder/cuda_model.hpp"
#endif
