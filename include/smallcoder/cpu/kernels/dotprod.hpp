// The dotprod level: the NEON kernels of neon.hpp with their 8-bit products on sdot, which
// multiplies four byte pairs into an int32 lane in one instruction (MullDot takes three for
// sixteen pairs: four per lane). Compiled into aarch64 builds that can target the extension
// (SMALLCODER_DOTPROD, isa.hpp), run only where the CPU reports it.
#pragma once

#include "smallcoder/cpu/isa.hpp"
#include "smallcoder/cpu/kernels/neon.hpp"

#if defined(SMALLCODER_AARCH64) && defined(SMALLCODER_DOTPROD)

#include <arm_neon.h>

namespace smallcoder::cpu::dotprod {

// MullDot's lanes, from one instruction.
struct Sdot {
  SMALLCODER_DOTPROD static int32x4_t dot(int32x4_t acc, int8x16_t w, int8x16_t a) { return vdotq_s32(acc, w, a); }
};

// A NEON kernel instantiated with Sdot, as a function compiled for the extension. Sdot::dot
// may be inlined only into functions compiled for it, and the shared kernels are not (GCC
// refuses always_inline across targets), so `flatten` inlines everything the kernel calls
// into this one function.
template <auto Fn>
struct Enabled;

template <class R, class... Args, R (*Fn)(Args...)>
struct Enabled<Fn> {
  SMALLCODER_DOTPROD __attribute__((flatten)) static R run(Args... args) { return Fn(args...); }
};

template <auto Fn>
constexpr auto enable = Enabled<Fn>::run;

template <class Blocks>
using QuantTiles = neon::QuantTiles<Blocks, Sdot>;

}  // namespace smallcoder::cpu::dotprod

#endif
