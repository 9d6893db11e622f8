/*
 * testrng.h - the seeded random numbers of the single-file Check programs:
 * xorshift64*, small, fast and the same on every platform, so a seed
 * printed by a failing run replays it exactly. One state per program
 * (static: each including file gets its own; include it from one file).
 */
#ifndef RMQ_TESTS_TESTRNG_H
#define RMQ_TESTS_TESTRNG_H

#include <stddef.h>
#include <stdint.h>

static uint64_t rng_state;

/* Start the sequence from s (0 is replaced by a fixed non-zero value). */
static inline void rng_seed(uint64_t s)
{
    rng_state = s != 0 ? s : 0x9e3779b97f4a7c15ull;
}

static inline uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

/* Uniform enough for tests in [0, n); n > 0. */
static inline uint64_t rng_below(uint64_t n)
{
    return rng_next() % n;
}

#endif
