// Which SIMD level the CPU kernels run at, chosen once at run time so that one generic build
// uses what the CPU has: on x86-64 AVX2, AVX-512 or AMX (from cpuid), on aarch64 NEON and the
// dot-product instructions (from the kernel's hardware capabilities), scalar code elsewhere.
// SMALLCODER_ISA=scalar|avx2|avx512|amx|neon|dotprod or force_isa() pick a level instead
// (tests run each).
// The chosen level is the one piece of global mutable state of the CPU kernels.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "smallcoder/error.hpp"

#if defined(__x86_64__) || defined(__i386__)
#define SMALLCODER_X86 1
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#elif defined(__aarch64__) && defined(__ARM_NEON)
#define SMALLCODER_AARCH64 1
#if defined(__linux__)
#include <sys/auxv.h>
#endif
// The dotprod kernels' functions target the extension one by one (GCC's target attribute),
// or the whole build does already (-march=...+dotprod; Apple's default). Elsewhere (clang
// before 16 declares the intrinsics only for a build that targets the extension) this build
// has no dotprod level.
#if defined(__ARM_FEATURE_DOTPROD)
#define SMALLCODER_DOTPROD
#elif defined(__GNUC__) && !defined(__clang__)
#define SMALLCODER_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#endif
#endif

namespace smallcoder::cpu {

// scalar: portable C++, always compiled. avx2: AVX2 + FMA + F16C. avx512: AVX-512 F, BW,
// VL, DQ and VNNI (Ice Lake, Sapphire Rapids, Zen 4 and later; a CPU with AVX-512 but no
// VNNI, like Skylake-X, runs the avx2 level). amx: the avx512 level plus AMX-TILE, AMX-BF16
// and AMX-INT8 (Sapphire Rapids and later) with the OS granting tile state; it differs
// from avx512 only in its batched products of bf16, Q8_0 and Q4_0 weights. neon: aarch64's
// Advanced SIMD, which every aarch64 CPU has. dotprod: neon plus the 8-bit dot products
// sdot/udot (FEAT_DotProd, optional from Armv8.2: Cortex-A55, A76 and later, Neoverse, Apple M;
// not the Raspberry Pi 4's Cortex-A72), for the integer products of quantized weights.
enum class Isa : int { scalar, avx2, avx512, amx, neon, dotprod };

inline const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar:
      return "scalar";
    case Isa::avx2:
      return "avx2";
    case Isa::avx512:
      return "avx512";
    case Isa::amx:
      return "amx";
    case Isa::neon:
      return "neon";
    case Isa::dotprod:
      return "dotprod";
  }
  return "?";
}

// Whether this build has kernels of level `isa`: the x86 levels on x86, the arm ones on
// aarch64 (dotprod where SMALLCODER_DOTPROD is defined above).
constexpr bool isa_built(Isa isa) {
  switch (isa) {
#ifdef SMALLCODER_X86
    case Isa::avx2:
    case Isa::avx512:
    case Isa::amx:
#endif
#ifdef SMALLCODER_AARCH64
    case Isa::neon:
#endif
#ifdef SMALLCODER_DOTPROD
    case Isa::dotprod:
#endif
    case Isa::scalar:
      return true;
    default:
      return false;
  }
}

// The level whose kernels `isa` runs where it has none of its own.
constexpr Isa fallback_isa(Isa isa) {
  // scalar, avx2 -> scalar, avx512 -> avx2, amx -> avx512, neon -> scalar, dotprod -> neon
  constexpr Isa kBelow[] = {Isa::scalar, Isa::scalar, Isa::avx2, Isa::avx512, Isa::scalar, Isa::neon};
  return kBelow[static_cast<int>(isa)];
}

#ifdef SMALLCODER_X86
namespace detail {

struct CpuFeatures {
  bool avx2 = false;    // with FMA and F16C, and the OS saving YMM state
  bool avx512 = false;  // F, BW, VL, DQ, VNNI, and the OS saving ZMM and mask state
  bool amx = false;     // avx512, AMX-TILE, -BF16 and -INT8, and the OS saving tile state for this process
};

// Linux hands a process the 8 KiB of AMX tile state only when asked (arch_prctl
// ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA); until then the first tile instruction
// faults (SIGILL). Asking again is harmless, and the grant covers every thread.
inline bool os_grants_tile_data() {
#if defined(__linux__) && defined(SYS_arch_prctl)
  constexpr int kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

inline CpuFeatures read_cpu_features() {
  CpuFeatures f;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(1, &a, &b, &c, &d) == 0) return f;
  const bool fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
  if (!osxsave || !avx) return f;
  unsigned xcr0_lo = 0, xcr0_hi = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  const bool os_ymm = (xcr0_lo & 0x6u) == 0x6u;    // SSE and AVX state
  const bool os_zmm = (xcr0_lo & 0xE6u) == 0xE6u;  // plus opmask, ZMM_Hi256, Hi16_ZMM
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) return f;
  const bool avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1, avx512bw = (b >> 30) & 1,
             avx512vl = (b >> 31) & 1, avx512vnni = (c >> 11) & 1;
  const bool amx_bf16 = (d >> 22) & 1, amx_tile = (d >> 24) & 1, amx_int8 = (d >> 25) & 1;
  const bool os_tiles = (xcr0_lo & 0x60000u) == 0x60000u;  // XTILECFG and XTILEDATA
  f.avx2 = os_ymm && avx2 && fma && f16c;
  f.avx512 = f.avx2 && os_zmm && avx512f && avx512dq && avx512bw && avx512vl && avx512vnni;
  f.amx = f.avx512 && amx_tile && amx_bf16 && amx_int8 && os_tiles && os_grants_tile_data();
  return f;
}

inline const CpuFeatures& cpu_features() {
  static const CpuFeatures features = read_cpu_features();
  return features;
}

}  // namespace detail
#elif defined(SMALLCODER_AARCH64)
namespace detail {

// Every aarch64 CPU has NEON; the dot products are optional.
struct CpuFeatures {
  bool dotprod = false;
};

inline CpuFeatures read_cpu_features() {
  CpuFeatures f;
#if defined(__ARM_FEATURE_DOTPROD)
  f.dotprod = true;  // the build targets it, so every CPU it runs on has it
#elif defined(__linux__)
#ifdef HWCAP_ASIMDDP
  constexpr unsigned long kAsimddp = HWCAP_ASIMDDP;
#else
  constexpr unsigned long kAsimddp = 1ul << 20;  // Linux's HWCAP_ASIMDDP (asm/hwcap.h)
#endif
  f.dotprod = (getauxval(AT_HWCAP) & kAsimddp) != 0;
#endif
  return f;
}

inline const CpuFeatures& cpu_features() {
  static const CpuFeatures features = read_cpu_features();
  return features;
}

}  // namespace detail
#endif

// Whether this CPU can run `isa` and this build has kernels for it.
inline bool cpu_supports(Isa isa) {
  if (!isa_built(isa)) return false;
#ifdef SMALLCODER_X86
  const detail::CpuFeatures& f = detail::cpu_features();
  switch (isa) {
    case Isa::avx2:
      return f.avx2;
    case Isa::avx512:
      return f.avx512;
    case Isa::amx:
      return f.amx;
    default:
      break;
  }
#elif defined(SMALLCODER_AARCH64)
  if (isa == Isa::dotprod) return detail::cpu_features().dotprod;
#endif
  return true;
}

// Every level: scalar, then each architecture's, slowest first.
constexpr Isa kAllIsas[] = {Isa::scalar, Isa::avx2, Isa::avx512, Isa::amx, Isa::neon, Isa::dotprod};

// The fastest level this CPU supports.
inline Isa best_isa() {
  Isa best = Isa::scalar;
  for (Isa isa : kAllIsas) {
    if (cpu_supports(isa)) best = isa;
  }
  return best;
}

// Parses a level's name (isa_name); throws naming `where` otherwise.
inline Isa parse_isa(std::string_view name, const std::string& where) {
  std::string known;
  for (Isa isa : kAllIsas) {
    if (name == isa_name(isa)) return isa;
    known += std::string(known.empty() ? "" : ", ") + isa_name(isa);
  }
  fail(where, "unknown kernel level '" + std::string(name) + "' (known: " + known + ")");
}

namespace detail {

inline std::atomic<int>& isa_choice() {
  static std::atomic<int> choice{-1};  // -1: not chosen yet
  return choice;
}

inline void check_supported(Isa isa, const std::string& where) {
  if (cpu_supports(isa)) return;
  const std::string level = std::string("kernel level ") + isa_name(isa), best = isa_name(best_isa());
  if (!isa_built(isa)) {
    const bool arm = isa == Isa::neon || isa == Isa::dotprod;
    const char* builds = !arm               ? "x86 builds"
                         : isa == Isa::neon ? "aarch64 builds"
                                            : "aarch64 builds by GCC or for dotprod targets";
    fail(where, level + " exists only in " + builds + "; this one's best is " + best);
  }
  const char* need = isa == Isa::avx2     ? "AVX2, FMA and F16C"
                     : isa == Isa::avx512 ? "AVX-512 F, BW, VL, DQ and VNNI"
                     : isa == Isa::amx    ? "AVX-512 F, BW, VL, DQ and VNNI, AMX-TILE, AMX-BF16 and AMX-INT8 "
                                            "with the OS granting tile state"
                                          : "the dot-product instructions (asimddp)";
  fail(where, level + " needs " + need + ", which this CPU lacks (best: " + best + ")");
}

}  // namespace detail

// Makes every following kernel call run at `isa`; throws if the CPU cannot run it.
inline void force_isa(Isa isa) {
  detail::check_supported(isa, "force_isa");
  detail::isa_choice().store(static_cast<int>(isa), std::memory_order_release);
}

// The level a SMALLCODER_ISA setting asks for: best_isa() when it is null or empty, else
// the named level, throwing if the name is unknown or the CPU lacks that level.
inline Isa choose_isa(const char* setting) {
  if (setting == nullptr || *setting == '\0') return best_isa();
  const Isa isa = parse_isa(setting, "SMALLCODER_ISA");
  detail::check_supported(isa, "SMALLCODER_ISA");
  return isa;
}

// The level kernels run at. The first call settles it from the environment
// (choose_isa(getenv("SMALLCODER_ISA")), throwing on a bad setting); force_isa() changes it
// later. CpuBackend's constructor makes that first call, so kernels never throw mid-step.
inline Isa active_isa() {
  const int chosen = detail::isa_choice().load(std::memory_order_acquire);
  if (chosen >= 0) return static_cast<Isa>(chosen);
  int expected = -1;
  detail::isa_choice().compare_exchange_strong(expected, static_cast<int>(choose_isa(std::getenv("SMALLCODER_ISA"))),
                                               std::memory_order_acq_rel);
  return static_cast<Isa>(detail::isa_choice().load(std::memory_order_acquire));
}

}  // namespace smallcoder::cpu
