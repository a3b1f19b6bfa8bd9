/* cubench.c - the fixed CPU benchmark (see cubench.h). */
#include "fabric/cubench.h"

#include <math.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "base/err.h"

#include "base/banned.h"

/* No fused multiply-adds: they change the checksum's bits (GCC already
 * keeps them apart under -std=c11; clang needs telling). */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

/* The fixed work. Changing any of these changes CU_CUBENCH_CHECKSUM and
 * the reference time (see cubench.h). */
#define INT_N 2048     /* integers sorted per round (8 KiB: stays in L1) */
#define INT_ROUNDS 540 /* fill, sort, hash */
#define BODIES 24      /* n-body kernel */
#define BODY_STEPS 3800
#define SEED 0x9e3779b97f4a7c15ULL

/* Read through a volatile so the compiler cannot precompute the work. */
static volatile uint64_t g_seed = SEED;

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    h *= 0xff51afd7ed558ccdULL;
    return h ^ (h >> 33);
}

static void sift_down(uint32_t *a, size_t root, size_t n)
{
    for (;;) {
        size_t child = 2 * root + 1;
        uint32_t t;
        if (child >= n)
            return;
        if (child + 1 < n && a[child] < a[child + 1])
            child++;
        if (a[root] >= a[child])
            return;
        t = a[root];
        a[root] = a[child];
        a[child] = t;
        root = child;
    }
}

static void heap_sort(uint32_t *a, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_down(a, i, n);
    for (size_t end = n; end-- > 1;) {
        uint32_t t = a[0];
        a[0] = a[end];
        a[end] = t;
        sift_down(a, 0, end);
    }
}

/* Integer part: LCG-filled arrays, heap-sorted and hashed. */
static uint64_t int_work(uint64_t seed)
{
    uint32_t a[INT_N];
    uint64_t x = seed, h = seed;

    for (int r = 0; r < INT_ROUNDS; r++) {
        for (size_t i = 0; i < INT_N; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            a[i] = (uint32_t)(x >> 32);
        }
        heap_sort(a, INT_N);
        for (size_t i = 0; i < INT_N; i += 1)
            h = mix(h, a[i] ^ (uint64_t)i);
    }
    return h;
}

static uint64_t dbits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

/* Floating-point part: a softened n-body integration (+ - * / sqrt only). */
static uint64_t float_work(uint64_t seed)
{
    double px[BODIES], py[BODIES], pz[BODIES], vx[BODIES], vy[BODIES], vz[BODIES];
    double m[BODIES];
    uint64_t x = seed, h = 0;
    const double dt = 0.001, soft = 0.01;

    for (int i = 0; i < BODIES; i++) {
        double *const slots[7] = {&px[i], &py[i], &pz[i], &vx[i], &vy[i], &vz[i], &m[i]};
        for (int k = 0; k < 7; k++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            /* 53 random bits -> [0, 1) exactly */
            *slots[k] = (double)(x >> 11) * (1.0 / 9007199254740992.0);
        }
        m[i] += 0.5;
    }
    for (int s = 0; s < BODY_STEPS; s++) {
        for (int i = 0; i < BODIES; i++) {
            double ax = 0, ay = 0, az = 0;
            for (int j = 0; j < BODIES; j++) {
                double dx = px[j] - px[i], dy = py[j] - py[i], dz = pz[j] - pz[i];
                double d2 = dx * dx + dy * dy + dz * dz + soft;
                double inv = 1.0 / (d2 * sqrt(d2));
                ax += m[j] * dx * inv;
                ay += m[j] * dy * inv;
                az += m[j] * dz * inv;
            }
            vx[i] += ax * dt;
            vy[i] += ay * dt;
            vz[i] += az * dt;
        }
        for (int i = 0; i < BODIES; i++) {
            px[i] += vx[i] * dt;
            py[i] += vy[i] * dt;
            pz[i] += vz[i] * dt;
        }
    }
    for (int i = 0; i < BODIES; i++)
        h = mix(mix(mix(h, dbits(px[i])), dbits(py[i])), dbits(pz[i]));
    return h;
}

uint64_t cu_cubench_work(void)
{
    uint64_t seed = g_seed;

    return mix(int_work(seed), float_work(seed ^ 0x5851f42d4c957f2dULL));
}

static int thread_cpu_ns(uint64_t *ns)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return -CU_EIO;
    *ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
    return 0;
}

int cu_cubench_run(uint64_t *factor_milli, uint64_t *elapsed_ns)
{
    uint64_t best = UINT64_MAX, f;

    if (!factor_milli)
        return -CU_EINVAL;
    for (int r = 0; r < CU_CUBENCH_RUNS; r++) {
        uint64_t t0, t1, sum;
        if (thread_cpu_ns(&t0))
            return -CU_EIO;
        sum = cu_cubench_work();
        if (thread_cpu_ns(&t1))
            return -CU_EIO;
        if (sum != CU_CUBENCH_CHECKSUM)
            return -CU_ECORRUPT;
        if (t1 - t0 < best)
            best = t1 - t0;
    }
    if (best == 0)
        best = 1;
    /* round(1000 × REF / best); 1000 × REF fits easily in 64 bits */
    f = (1000ULL * CU_CUBENCH_REFERENCE_NS + best / 2) / best;
    if (f < CU_CUBENCH_FACTOR_MIN)
        f = CU_CUBENCH_FACTOR_MIN;
    if (f > CU_CUBENCH_FACTOR_MAX)
        f = CU_CUBENCH_FACTOR_MAX;
    *factor_milli = f;
    if (elapsed_ns)
        *elapsed_ns = best;
    return 0;
}
