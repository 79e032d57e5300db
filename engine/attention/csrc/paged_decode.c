/* Paged decode attention on the CPU, float32, straight from the block-table KV cache.
 *
 * One query token per sequence. For each (sequence, kv head) the GQA group's query heads
 * are scored against the sequence's context a chunk at a time (never crossing a block),
 * with an online softmax, and the weighted V sum is accumulated: nothing is gathered or
 * padded. Parallel with OpenMP over (sequence, kv head). head_dim must be a
 * multiple of 8. GCC C (vector extensions, __builtin_shuffle); built by engine.native,
 * loaded by cpu_kernels.py, which mirrors the argument struct. */

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "vec8.h"

#define CHUNK 32         /* keys per online-softmax update; a multiple of 8 */
#define NEG_BIG (-1e30f) /* "minus infinity" that stays finite under -ffast-math */
#define PARALLEL_MIN_FLOATS (1 << 16) /* K floats read below which one thread does it all */

typedef struct {
    const float *q;              /* [T, H, Dh] rows of the flattened batch */
    int64_t q_row_stride;        /* elements between consecutive rows of q */
    const float *k_cache;        /* [num_blocks, block_size, Hkv, Dh] */
    const float *v_cache;
    const int64_t *rows;         /* [D] row of each decode in q and out */
    const int64_t *block_tables; /* [D, bt_stride] */
    int64_t bt_stride;
    const int64_t *context_lens; /* [D] tokens in the cache, the new one included */
    float *out;                  /* [T, H, Dh], contiguous */
    int num_heads, num_kv_heads, head_dim, block_size;
    int window;                  /* keys within the last `window` positions; <= 0: all */
    float scale;
} DecodeArgs;

/* Pairwise lane sums of a and b, interleaved: one level of the transpose-add tree. */
static inline v8 pair_add(v8 a, v8 b, i8 lo, i8 hi) {
    return __builtin_shuffle(a, b, lo) + __builtin_shuffle(a, b, hi);
}

/* [sum(a[0]), ..., sum(a[7])]: eight horizontal sums at once. */
static inline v8 hsum8(const v8 *a) {
    const i8 e1 = {0, 8, 2, 10, 4, 12, 6, 14}, o1 = {1, 9, 3, 11, 5, 13, 7, 15};
    const i8 e2 = {0, 1, 8, 9, 4, 5, 12, 13}, o2 = {2, 3, 10, 11, 6, 7, 14, 15};
    const i8 e3 = {0, 1, 2, 3, 8, 9, 10, 11}, o3 = {4, 5, 6, 7, 12, 13, 14, 15};
    v8 t0 = pair_add(a[0], a[1], e1, o1), t1 = pair_add(a[2], a[3], e1, o1);
    v8 t2 = pair_add(a[4], a[5], e1, o1), t3 = pair_add(a[6], a[7], e1, o1);
    return pair_add(pair_add(t0, t1, e2, o2), pair_add(t2, t3, e2, o2), e3, o3);
}

/* s[g * CHUNK + j] = qs[g] . k_j for the n keys at k (row stride ks), 8 keys at a time;
 * scores past n are computed from a repeated last key and never read. */
static void score_chunk(const float *qs, const float *k, int64_t ks, int n, int group,
                        int dh, float *s) {
    for (int j0 = 0; j0 < n; j0 += 8) {
        const float *kr[8];
        for (int t = 0; t < 8; t++) kr[t] = k + (j0 + t < n ? j0 + t : n - 1) * ks;
        for (int g = 0; g < group; g++) {
            const float *qg = qs + g * dh;
            v8 a[8] = {0};
            for (int d = 0; d < dh; d += 8) {
                const v8 qv = load8(qg + d);
                for (int t = 0; t < 8; t++) a[t] += qv * load8(kr[t] + d);
            }
            store8(s + g * CHUNK + j0, hsum8(a));
        }
    }
}

/* Online softmax for one query head: turns s[0:n] into weights (s holds CHUNK floats; the
 * lanes past n become 0), rescales acc. */
static void softmax_update(float *s, int n, float *m, float *l, float *acc, int dh) {
    float mx = *m;
    for (int j = 0; j < n; j++) mx = s[j] > mx ? s[j] : mx;
    const i8 lane = {0, 1, 2, 3, 4, 5, 6, 7};
    v8 sum = {0};
    for (int j = 0; j < n; j += 8) {
        const v8 p = select8(lane + j < n, exp8(load8(s + j) - mx));
        store8(s + j, p);
        sum += p;
    }
    const float corr = expf(*m - mx);
    for (int d = 0; d < dh; d++) acc[d] *= corr;
    *l = *l * corr + (sum[0] + sum[1] + sum[2] + sum[3] + sum[4] + sum[5] + sum[6] + sum[7]);
    *m = mx;
}

/* acc[0:8*nv] += sum_j p[j] * v_j[0:8*nv]: 2*nv independent FMA chains (even and odd j). */
static inline __attribute__((always_inline)) void
weighted_rows(const float *p, const float *v, int64_t ks, int n, float *acc, const int nv) {
    v8 a[4], b[4];
    for (int u = 0; u < nv; u++) a[u] = load8(acc + 8 * u), b[u] = (v8){0};
    int j = 0;
    for (; j + 1 < n; j += 2)
        for (int u = 0; u < nv; u++) {
            a[u] += p[j] * load8(v + j * ks + 8 * u);
            b[u] += p[j + 1] * load8(v + (j + 1) * ks + 8 * u);
        }
    for (int u = 0; u < nv; u++) {
        if (j < n) a[u] += p[j] * load8(v + j * ks + 8 * u);
        store8(acc + 8 * u, a[u] + b[u]);
    }
}

/* acc[g] += sum_j p[g * CHUNK + j] * v_j over the n values at v (row stride ks). */
static void weighted_sum(const float *p, const float *v, int64_t ks, int n, int group,
                         int dh, float *acc) {
    for (int g = 0; g < group; g++) {
        const float *pg = p + g * CHUNK;
        float *ag = acc + g * dh;
        int d = 0;
        for (; d + 32 <= dh; d += 32) weighted_rows(pg, v + d, ks, n, ag + d, 4);
        for (; d < dh; d += 8) weighted_rows(pg, v + d, ks, n, ag + d, 1);
    }
}

/* Ask for the next chunk's K and V rows (width floats each) while this one is computed, into
 * L2 (locality 1; into L1 they would evict the chunk being computed). */
static void prefetch_rows(const float *k, const float *v, int64_t ks, int n, int width) {
    for (int j = 0; j < n; j++)
        for (int d = 0; d < width; d += 16) {
            __builtin_prefetch(k + j * ks + d, 0, 1);
            __builtin_prefetch(v + j * ks + d, 0, 1);
        }
}

/* The cache offset of the token at pos (its row of all kv heads); *n = the chunk's length:
 * up to CHUNK tokens, within pos's block and the context. */
static int64_t chunk_at(const DecodeArgs *a, const int64_t *table, int64_t pos, int64_t ctx,
                        int *n) {
    const int64_t bs = a->block_size, off = pos % bs;
    int64_t len = bs - off;
    if (len > ctx - pos) len = ctx - pos;
    *n = (int)(len < CHUNK ? len : CHUNK);
    return (table[pos / bs] * bs + off) * a->num_kv_heads * a->head_dim;
}

/* Decode i's query heads of kv head h (contiguous in q and out) against that head's keys
 * and values: each row slice is head_dim floats, so a chunk and the next one's prefetch take
 * 2 x 16 KB at 16 tokens and head_dim 128. (Items of whole token rows, all kv heads at
 * once, took ~20 % longer at batch 32 on the small benchmark model: 4 x the footprint.) */
static void attend(const DecodeArgs *a, int64_t i, int h) {
    const int dh = a->head_dim, group = a->num_heads / a->num_kv_heads;
    const int64_t ks = (int64_t)a->num_kv_heads * dh; /* between tokens of a block */
    const int64_t ctx = a->context_lens[i], *table = a->block_tables + i * a->bt_stride;
    float qs[group * dh], acc[group * dh], s[group * CHUNK], m[group], l[group];

    const float *q = a->q + a->rows[i] * a->q_row_stride + (int64_t)h * group * dh;
    for (int x = 0; x < group * dh; x++) qs[x] = q[x] * a->scale, acc[x] = 0.f;
    for (int x = 0; x < group; x++) m[x] = NEG_BIG, l[x] = 0.f;

    int64_t pos = (a->window > 0 && ctx > a->window) ? ctx - a->window : 0;
    int n, next_n = 0;
    int64_t base = chunk_at(a, table, pos, ctx, &n) + (int64_t)h * dh;
    while (pos < ctx) {
        const int64_t next = pos + n;
        int64_t next_base = 0;
        if (next < ctx) {
            next_base = chunk_at(a, table, next, ctx, &next_n) + (int64_t)h * dh;
            prefetch_rows(a->k_cache + next_base, a->v_cache + next_base, ks, next_n, dh);
        }
        score_chunk(qs, a->k_cache + base, ks, n, group, dh, s);
        for (int x = 0; x < group; x++)
            softmax_update(s + x * CHUNK, n, &m[x], &l[x], acc + x * dh, dh);
        weighted_sum(s, a->v_cache + base, ks, n, group, dh, acc);
        pos = next, base = next_base, n = next_n;
    }

    float *o = a->out + (a->rows[i] * a->num_heads + (int64_t)h * group) * dh;
    for (int x = 0; x < group; x++) {
        const float inv = l[x] > 0.f ? 1.f / l[x] : 0.f;
        for (int d = 0; d < dh; d++) o[x * dh + d] = acc[x * dh + d] * inv;
    }
}

/* One work item per (decode, kv head). Small batches stay on the calling thread: waking the
 * pool would cost more than the work. */
void paged_decode_f32(const DecodeArgs *a, int64_t num_decodes, int num_threads) {
    const int hkv = a->num_kv_heads;
    int64_t keys = 0;
    for (int64_t i = 0; i < num_decodes; i++) keys += a->context_lens[i];
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads) \
    if (keys * hkv * a->head_dim >= PARALLEL_MIN_FLOATS)
    for (int64_t it = 0; it < num_decodes * hkv; it++) attend(a, it / hkv, (int)(it % hkv));
}

/* Scatter T new tokens' K and V (rows of row_size floats, any row stride) to their slots. */
void write_kv_f32(const float *key, int64_t key_row_stride, const float *value,
                  int64_t value_row_stride, const int64_t *slots, int64_t num_tokens,
                  float *k_cache, float *v_cache, int64_t row_size) {
    for (int64_t t = 0; t < num_tokens; t++) {
        memcpy(k_cache + slots[t] * row_size, key + t * key_row_stride,
               row_size * sizeof(float));
        memcpy(v_cache + slots[t] * row_size, value + t * value_row_stride,
               row_size * sizeof(float));
    }
}
