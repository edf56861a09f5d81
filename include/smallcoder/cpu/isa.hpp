// Which SIMD level the CPU kernels run at, chosen once at run time from cpuid so one
// generic x86-64 build uses AVX2, AVX-512 or AMX where the CPU has them and scalar code
// elsewhere. SMALLCODER_ISA=scalar|avx2|avx512|amx or force_isa() pick a level instead
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
#endif

namespace smallcoder::cpu {

// scalar: portable C++, always compiled. avx2: AVX2 + FMA + F16C. avx512: AVX-512 F, BW,
// VL, DQ and VNNI (Ice Lake, Sapphire Rapids, Zen 4 and later; a CPU with AVX-512 but no
// VNNI, like Skylake-X, runs the avx2 level). amx: the avx512 level plus AMX-TILE, AMX-BF16
// and AMX-INT8 (Sapphire Rapids and later) with the OS granting tile state; it differs
// from avx512 only in its batched products of bf16, Q8_0 and Q4_0 weights.
enum class Isa : int { scalar, avx2, avx512, amx };

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
  }
  return "?";
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
#endif

// Whether this CPU can run `isa` (and this build has kernels for it).
inline bool cpu_supports(Isa isa) {
#ifdef SMALLCODER_X86
  const detail::CpuFeatures& f = detail::cpu_features();
  switch (isa) {
    case Isa::scalar:
      return true;
    case Isa::avx2:
      return f.avx2;
    case Isa::avx512:
      return f.avx512;
    case Isa::amx:
      return f.amx;
  }
  return false;
#else
  return isa == Isa::scalar;
#endif
}

// The fastest level this CPU supports.
inline Isa best_isa() {
  if (cpu_supports(Isa::amx)) return Isa::amx;
  if (cpu_supports(Isa::avx512)) return Isa::avx512;
  if (cpu_supports(Isa::avx2)) return Isa::avx2;
  return Isa::scalar;
}

// Every level, slowest first.
constexpr Isa kAllIsas[] = {Isa::scalar, Isa::avx2, Isa::avx512, Isa::amx};

// Parses "scalar", "avx2", "avx512" or "amx"; throws naming `where` otherwise.
inline Isa parse_isa(std::string_view name, const std::string& where) {
  for (Isa isa : kAllIsas) {
    if (name == isa_name(isa)) return isa;
  }
  fail(where, "unknown kernel level '" + std::string(name) + "' (known: scalar, avx2, avx512, amx)");
}

namespace detail {

inline std::atomic<int>& isa_choice() {
  static std::atomic<int> choice{-1};  // -1: not chosen yet
  return choice;
}

inline void check_supported(Isa isa, const std::string& where) {
  if (cpu_supports(isa)) return;
#ifdef SMALLCODER_X86
  const char* need = isa == Isa::avx2     ? "AVX2, FMA and F16C"
                     : isa == Isa::avx512 ? "AVX-512 F, BW, VL, DQ and VNNI"
                                          : "AVX-512 F, BW, VL, DQ and VNNI, AMX-TILE, AMX-BF16 and AMX-INT8 "
                                            "with the OS granting tile state";
  fail(where, std::string("kernel level ") + isa_name(isa) + " needs " + need +
                  ", which this CPU lacks (best: " + isa_name(best_isa()) + ")");
#else
  fail(where, std::string("kernel level ") + isa_name(isa) + " exists only on x86 builds; this one runs scalar");
#endif
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
