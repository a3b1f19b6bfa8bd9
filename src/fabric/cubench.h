/* cubench.h - the fixed CPU benchmark that gives a provider its CU factor
 * (DESIGN.md §6; docs/api.md "Money").
 *
 * One CU is one CPU-second on the reference core. A provider measures its
 * speed against that core once at start: cu_factor_milli = 1000 × (the
 * reference core's time for the fixed work) / (this machine's time), so a
 * core twice as fast as the reference says 2000 and a replica's
 * cu_milli = cpu_ms × cu_factor_milli / 1000.
 *
 * The work is fixed (not a time budget) and deterministic: an LCG fills an
 * array of integers that is heap-sorted and hashed, then a small
 * double-precision n-body kernel runs (only + - * / and sqrt, which IEEE 754
 * rounds exactly, so every conforming build gets the same bits; the build
 * uses -std=c11, which keeps the compiler from contracting into FMAs). Both
 * fold into a checksum that must equal CU_CUBENCH_CHECKSUM, so a
 * miscompiled or altered benchmark is refused instead of silently pricing
 * work wrong. The seed is read through a volatile so the compiler cannot
 * fold the work away.
 *
 * Reference core: one core of the development VM this was written on,
 * measured 2026-11-23: "AMD EPYC" family 25 model 17 (Zen 4), 2 vCPUs,
 * Debian 12, gcc 12.2 -O2 (the Makefile's normal build). The fastest of
 * 120 runs of the fixed work (4 batches of 30, the machine otherwise
 * busy) took 65.49 ms of thread CPU time; batches' bests were
 * 65.5-75.9 ms. CU_CUBENCH_REFERENCE_NS is that figure, rounded.
 * Changing the work means changing CU_CUBENCH_CHECKSUM and re-measuring
 * CU_CUBENCH_REFERENCE_NS on a machine that keeps the factor scale
 * (1000 = that core). */
#ifndef CU_FABRIC_CUBENCH_H
#define CU_FABRIC_CUBENCH_H

#include <stdint.h>

/* Thread CPU time of one run of the fixed work on the reference core. */
#define CU_CUBENCH_REFERENCE_NS 65500000ULL
/* The checksum every correct build computes for the fixed work. */
#define CU_CUBENCH_CHECKSUM 0x2d6c3533968dd0e9ULL
/* The factor is clamped to this range (what the exchange accepts). */
#define CU_CUBENCH_FACTOR_MIN 10
#define CU_CUBENCH_FACTOR_MAX 100000
/* Runs taken; the least disturbed (fastest) one counts. */
#define CU_CUBENCH_RUNS 3

/* Runs the fixed work CU_CUBENCH_RUNS times on the calling thread and
 * measures each run's thread CPU time (CLOCK_THREAD_CPUTIME_ID). Sets
 * *factor_milli = round(1000 × CU_CUBENCH_REFERENCE_NS / best), clamped to
 * CU_CUBENCH_FACTOR_MIN..CU_CUBENCH_FACTOR_MAX, and *elapsed_ns (if
 * non-NULL) = best, the CPU time of the fastest run. Takes about
 * CU_CUBENCH_RUNS × 66-80 ms on the reference core (longer under sanitizers).
 * Returns 0; -CU_ECORRUPT when a run's checksum is not
 * CU_CUBENCH_CHECKSUM (a broken build: the factor is not set);
 * -CU_EINVAL for a NULL factor_milli; -CU_EIO when the clock fails. */
int cu_cubench_run(uint64_t *factor_milli, uint64_t *elapsed_ns);

/* One run of the fixed work; returns its checksum (CU_CUBENCH_CHECKSUM
 * when the build is right). For tests and calibration. */
uint64_t cu_cubench_work(void);

#endif
