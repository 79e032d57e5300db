/* The element-wise parts of a decoder layer on the CPU, float32, one pass each over the
 * [rows, width] activations instead of several torch ops: the residual add fused with the
 * RMSNorm that follows it, rotate-half RoPE in place on q and k, and SwiGLU's silu(gate) * up.
 * Rows run in parallel (OpenMP) when there are enough of them (prefill); a decode batch
 * stays on the calling thread. Built by engine.native, called from cpu_ops.py. */

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "vec8.h"

#define PARALLEL_MIN_FLOATS (1 << 16) /* below this, one thread does it all */

/* h += delta (when delta is not NULL), then out = h / sqrt(mean(h^2) + eps) * w per row. */
void add_rms_norm_f32(float *h, const float *delta, const float *w, float *out, int64_t rows,
                      int64_t d, float eps, int num_threads) {
#pragma omp parallel for num_threads(num_threads) if (rows * d >= PARALLEL_MIN_FLOATS)
    for (int64_t r = 0; r < rows; r++) {
        float *x = h + r * d, *o = out + r * d;
        float squares = 0.f;
        for (int64_t i = 0; i < d; i++) {
            if (delta) x[i] += delta[r * d + i];
            squares += x[i] * x[i];
        }
        const float inv = 1.f / sqrtf(squares / (float)d + eps);
        for (int64_t i = 0; i < d; i++) o[i] = w[i] * (x[i] * inv);
    }
}

/* x [rows, heads * dh] at row_stride, in place: x * cos + rotate_half(x) * sin per head,
 * cos and sin [rows, dh]. */
void rotary_f32(float *x, int64_t row_stride, int64_t rows, int heads, int dh, const float *cos,
                const float *sin, int num_threads) {
    const int half = dh / 2;
#pragma omp parallel for num_threads(num_threads) if (rows * heads * dh >= PARALLEL_MIN_FLOATS)
    for (int64_t r = 0; r < rows; r++) {
        const float *c = cos + r * dh, *s = sin + r * dh;
        for (int head = 0; head < heads; head++) {
            float *v = x + r * row_stride + (int64_t)head * dh;
            for (int i = 0; i < half; i++) {
                const float a = v[i], b = v[i + half];
                v[i] = a * c[i] - b * s[i];
                v[i + half] = b * c[i + half] + a * s[i + half];
            }
        }
    }
}

/* silu(x) = x * sigmoid(x), with e = e^-|x|: sigmoid is 1 / (1 + e) for x >= 0, e / (1 + e)
 * below (no overflow either way). */
static inline v8 silu8(v8 x) {
    const i8 negative = x < 0.f;
    const v8 e = exp8(select8(negative, x) - select8(~negative, x));
    const v8 one = {1, 1, 1, 1, 1, 1, 1, 1};
    return x * (select8(negative, e) + select8(~negative, one)) / (one + e);
}

/* out[r, i] = silu(gu[r, i]) * gu[r, inter + i]: gu holds gate then up per row. */
void silu_mul_f32(const float *gu, int64_t rows, int64_t inter, float *out, int num_threads) {
#pragma omp parallel for num_threads(num_threads) if (rows * inter >= PARALLEL_MIN_FLOATS)
    for (int64_t r = 0; r < rows; r++) {
        const float *g = gu + r * 2 * inter, *u = g + inter;
        float *o = out + r * inter;
        int64_t i = 0;
        for (; i + 8 <= inter; i += 8) store8(o + i, silu8(load8(g + i)) * load8(u + i));
        for (; i < inter; i++) {
            const float e = expf(-fabsf(g[i]));
            o[i] = g[i] * (g[i] < 0.f ? e : 1.f) / (1.f + e) * u[i];
        }
    }
}
