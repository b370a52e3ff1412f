#pragma once
// GLOSS_CLONES: compile a function for AVX-512, AVX2 and the baseline, the CPU choosing at load
// time (GCC's target_clones; elsewhere one baseline build). For element-wise loops that would
// otherwise run at the x86-64 baseline's SSE2 width.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GLOSS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define GLOSS_CLONES
#endif
