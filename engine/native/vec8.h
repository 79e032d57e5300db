/* 8-lane float vectors (GCC vector extensions) shared by the engine's C sources: unaligned
 * loads and stores, lane selection by a comparison mask, and e^x for x <= 0. */

#ifndef PROTOSERVE_VEC8_H
#define PROTOSERVE_VEC8_H

#include <stdint.h>
#include <string.h>

typedef float v8 __attribute__((vector_size(32)));
typedef int32_t i8 __attribute__((vector_size(32)));

static inline v8 load8(const float *p) {
    v8 v;
    memcpy(&v, p, sizeof v); /* unaligned vector load */
    return v;
}

static inline void store8(float *p, v8 v) { memcpy(p, &v, sizeof v); }

/* Lanes of v where keep is all ones, zero where it is zero (a vector comparison result). */
static inline v8 select8(i8 keep, v8 v) {
    i8 bits;
    memcpy(&bits, &v, sizeof bits);
    bits &= keep;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* e^x, eight lanes, for x <= 0 (softmax arguments; -1e30 included): x = n ln2 + r with
 * |r| <= ln2 / 2, e^r by a degree-6 Taylor polynomial (relative error ~2e-7), 2^n built in
 * the exponent bits. Below -87 (2^n no longer a normal float) the result is 0. */
static inline v8 exp8(v8 x) {
    const i8 normal = x > -87.f;
    x = select8(normal, x);
    const i8 ni = __builtin_convertvector(x * 1.44269504088896341f - 0.5f, i8); /* rounds */
    const v8 n = __builtin_convertvector(ni, v8);
    const v8 r = (x - n * 0.693359375f) + n * 2.12194440e-4f; /* ln2 split hi + lo */
    v8 p = r * (1.f / 720) + 1.f / 120;
    p = p * r + 1.f / 24;
    p = p * r + 1.f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.f;
    p = p * r + 1.f;
    const i8 bits = (ni + 127) << 23;
    v8 scale;
    memcpy(&scale, &bits, sizeof scale);
    return select8(normal, p * scale);
}

#endif
