/* One Mamba decode step on the CPU, fused: a token in, its logits out, the state advanced.
 *
 * Its plain twin is `MambaLM.step` in model/mamba.py (tests hold the two to fp32 tolerance);
 * Mamba-2's and RWKV-7's steps follow below in the same frame.
 * Decoding one token streams every weight once and does little arithmetic, so its time is
 * memory bandwidth plus the overhead between operations. In PyTorch that overhead is some
 * 20 operator calls per layer (a few milliseconds per token on mamba-130m); here the whole
 * step is one call, and the matrix-vector products read the (in, out) weights row after row,
 * eight rows at a time, which streams them faster than a general matrix multiply does.
 *
 * Threads: one OpenMP team for the whole step (`threads` of them, the caller's
 * torch.get_num_threads()). Each thread owns a range of the d_in channels and does, for its
 * channels, in_proj's columns, the convolution, dt_proj's columns, the scan and the gate; x_proj
 * and out_proj are split by their input rows (the same channels) into per-thread partial sums,
 * which every thread then adds up in the same order into its own copy of the residual. So a
 * layer costs two barriers and every weight is read by exactly one thread. Without OpenMP the
 * pragmas are ignored and one thread does it all.
 *
 * Quantized layers (model/quantize.py) are read as the best CPU runtimes read them: the
 * activations are quantized on the fly to int8 in blocks of 32 (one fp32 scale per block, as
 * llama.cpp's Q8_0), and each block's dot product is an integer one (AVX2 `maddubs`, else a
 * portable loop), scaled once per block.
 *
 * `cpu_step.py` compiles this file with the machine's C compiler on first use and falls back
 * to the PyTorch step without one.
 *
 * Layouts (those of the PyTorch model, so no weight is copied):
 *   fp32 Linear weights (in, out) row-major; int8 weights (out, in) with an fp32 scale per row;
 *   4-bit weights (out, in/2) bytes, 32 per group (element j of a group in the low nibble of
 *   byte j, element j+16 in its high nibble, stored +8 as in Q4_0) with a bf16 scale per
 *   (row, group); the fp32 embedding (d, vocab), a token's vector is a column; the int8
 *   embedding (vocab, d) rows with an fp32 scale each; conv weight (d_in, k);
 *   A2 = A·log2(e) (d_in, n); conv state (d_in, k); ssm state (d_in, n).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sched.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define HAVE_AVX2 1
#endif

typedef struct {
    int32_t d, d_in, n, k, rank, vocab, layers;
    int32_t falcon;     /* weightless RMS norms on dt, B and C */
    float eps;          /* the blocks' and the final norm's */
    float mixer_eps;    /* FalconMamba's norms inside the mixer */
} MambaDims;

/* A linear layer is four pointers: weight, bias (NULL for none), scales (NULL for fp32) and its
 * kind, a small integer stored in the pointer slot. */
enum { L_W, L_B, L_S, L_KIND, LINEAR };
enum { KIND_F32 = 0, KIND_INT8 = 1, KIND_Q4 = 2 };
/* Quantized rows are read one after another; each row asks for the lines PREFETCH_BYTES further
 * on, non-temporal (read once a token, so they need not stay in the caches). The hardware's
 * stream prefetcher alone leaves part of the bandwidth unused: A/B in one process, 1 thread,
 * new ÷ old, Mamba-2 4-bit 0.85–0.92, int8 0.89–0.94, Mamba-1 4-bit 0.85, int8 0.94, at 2 threads
 * 0.89–0.95 (2,048 to 8,192 bytes ahead measured alike; a normal prefetch, locality 3, about
 * the same). The same for fp32's matvec (eight rows a pass) was 1.13–1.24× slower: not there. */
#ifndef PREFETCH_BYTES
#define PREFETCH_BYTES 2048
#endif
/* Per-layer pointers, in this order. */
enum {
    NORM, IN_PROJ, CONV_W = IN_PROJ + LINEAR, CONV_B, X_PROJ, DT_PROJ = X_PROJ + LINEAR,
    A2 = DT_PROJ + LINEAR, D_SKIP, OUT_PROJ, PER_LAYER = OUT_PROJ + LINEAR
};
/* After the layers: the embedding (and its int8 row scales, NULL for fp32), the final norm,
 * the LM head as a linear layer. */
enum { EMBEDDING, EMBEDDING_S, NORM_F, HEAD, TAIL = HEAD + LINEAR };

#define QBLOCK 32 /* activations and 4-bit weights are quantized in blocks of this many */

/* 2^x, Cephes' exp2f polynomial (relative error below 2e-7), written so loops over it vectorize. */
static inline float exp2_fast(float x) {
    /* Selects and plain arithmetic only: fminf and floorf keep gcc from vectorizing the loop. */
    x = x < -126.0f ? -126.0f : x;
    x = x > 126.0f ? 126.0f : x;
    const float whole = (x + 12582912.0f) - 12582912.0f; /* round to nearest: 12582912 = 1.5 · 2^23 */
    const float f = x - whole;                            /* in [-0.5, 0.5] */
    float p = 1.535336188319500e-4f;
    p = p * f + 1.339887440266574e-3f;
    p = p * f + 9.618437357674640e-3f;
    p = p * f + 5.550332471162809e-2f;
    p = p * f + 2.402264791363012e-1f;
    p = p * f + 6.931472028550421e-1f;
    p = p * f + 1.0f;
    const int32_t exponent = ((int32_t)whole + 127) << 23;
    float scale;
    memcpy(&scale, &exponent, sizeof scale); /* a bit cast that vectorizes, unlike a union */
    return p * scale;
}

static inline float exp_fast(float x) { return exp2_fast(x * 1.4426950408889634f); }

/* ln(x) for normal x > 0, Cephes' logf polynomial, branch-free. */
static inline float log_fast(float x) {
    int32_t bits;
    memcpy(&bits, &x, sizeof bits);
    float e = (float)(((bits >> 23) & 0xff) - 126);
    bits = (bits & 0x007fffff) | 0x3f000000; /* mantissa in [0.5, 1) */
    float m;
    memcpy(&m, &bits, sizeof m);
    /* Every value is computed, then selected: a branch (or a trapping operation under one)
     * keeps the loop from vectorizing. */
    const int below = m < 0.70710678f;
    const float e_below = e - 1.0f, m_below = m + m - 1.0f, m_above = m - 1.0f;
    e = below ? e_below : e;
    m = below ? m_below : m_above;
    const float z = m * m;
    float y = 7.0376836292e-2f;
    y = y * m - 1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m - 1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m - 1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m - 2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y = y * m * z - 2.12194440e-4f * e - 0.5f * z;
    return m + y + 0.693359375f * e;
}

static inline float silu(float x) { return x / (1.0f + exp_fast(-x)); }

/* PyTorch's softplus (beta 1, threshold 20); log1p(u) as log(1+u)·u/((1+u)-1), exact for small u. */
static inline float softplus(float x) {
    const float u = exp_fast(x < 20.0f ? x : 20.0f);
    const float v = 1.0f + u, rounding = v - 1.0f;
    const float log1p_u = u * (log_fast(v) / (rounding == 0.0f ? 1.0f : rounding));
    /* Selects, not branches, so the loop vectorizes; where 1 + u rounds to 1, log1p(u) = u. */
    const float small = rounding == 0.0f ? u : log1p_u;
    return x > 20.0f ? x : small;
}

/* out = x / rms(x) (· weight when given); x and out may be the same array. */
static void rms_norm(const float *x, const float *weight, float eps, int size, float *out) {
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < size; i++) sum += x[i] * x[i];
    const float scale = 1.0f / sqrtf(sum / (float)size + eps);
    for (int i = 0; i < size; i++) out[i] = x[i] * scale * (weight ? weight[i] : 1.0f);
}

/* y[0:cols] (+)= x (in) · W (in rows of `ld` floats, the first `cols` of each): W is read row after
 * row, eight rows per pass over y, so y stays in L1 and the weights stream through in order.
 * `accumulate` adds to y; otherwise y starts from bias (or zero). */
static void matvec(const float *restrict x, const float *restrict W, int64_t ld, const float *restrict bias,
                   int in, int cols, int accumulate, float *restrict y) {
    if (!accumulate) {
        if (bias) memcpy(y, bias, sizeof(float) * (size_t)cols);
        else memset(y, 0, sizeof(float) * (size_t)cols);
    }
    int i = 0;
    for (; i + 8 <= in; i += 8) {
        const float *w = W + (size_t)i * ld;
        const float x0 = x[i], x1 = x[i + 1], x2 = x[i + 2], x3 = x[i + 3];
        const float x4 = x[i + 4], x5 = x[i + 5], x6 = x[i + 6], x7 = x[i + 7];
        for (int j = 0; j < cols; j++)
            y[j] += x0 * w[j] + x1 * w[j + ld] + x2 * w[j + 2 * ld] + x3 * w[j + 3 * ld]
                  + x4 * w[j + 4 * ld] + x5 * w[j + 5 * ld] + x6 * w[j + 6 * ld] + x7 * w[j + 7 * ld];
    }
    for (; i < in; i++) {
        const float xi = x[i];
        const float *w = W + (size_t)i * ld;
        for (int j = 0; j < cols; j++) y[j] += xi * w[j];
    }
}

static inline float bf16_to_float(uint16_t bits) {
    const uint32_t widened = (uint32_t)bits << 16;
    float value;
    memcpy(&value, &widened, sizeof value);
    return value;
}

/* x (size, a multiple of QBLOCK) → q (size) int8 and scale (size / QBLOCK): per block,
 * scale = max|x| / 127 and q = round(x / scale), ties to even (torch.round's rule; the twin is
 * `quantize_activations` in model/quantize.py). */
static void quantize_q8(const float *restrict x, int size, int8_t *restrict q, float *restrict scale) {
    for (int b = 0; b < size / QBLOCK; b++) {
        const float *xb = x + (size_t)b * QBLOCK;
        float amax = 0.0f;
        for (int i = 0; i < QBLOCK; i++) {
            const float a = fabsf(xb[i]);
            amax = a > amax ? a : amax;
        }
        const float s = amax / 127.0f;
        scale[b] = s;
        for (int i = 0; i < QBLOCK; i++) q[(size_t)b * QBLOCK + i] = s > 0.0f ? (int8_t)nearbyintf(xb[i] / s) : 0;
    }
}

#ifdef HAVE_AVX2
static inline __m256 dot32_q8(__m256i a, __m256i b) {
    /* maddubs multiplies unsigned by signed bytes: move a's signs onto b (llama.cpp's trick). */
    const __m256i pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The 4-bit rows' view of the activations, made once per linear layer call and read by every row
 * (row_dot_q4). A 4-bit weight is stored as u = q + 8 in 0..15, and maddubs multiplies unsigned
 * by signed bytes, so the nibbles go in as they are, with no sign trick and no subtraction:
 * Σ a·q = Σ a·u − 8·Σ a, and 8·Σ a is a per-block constant of the activations (`corr`).
 * One 32-byte load of a row holds two blocks (b in the low 16 bytes, b+1 in the high); masking it
 * gives [b's elements 0..15 | b+1's 0..15] and shifting it by 4 [b's 16..31 | b+1's 16..31], so
 * the activations of a pair of blocks are stored in that order (`q`). Each block's integer dot
 * product ends in four 32-bit lanes, so its scale (`scale4`) and its correction (`corr4`, 8·Σa
 * spread as 2·Σa over the four lanes) are stored four times: one load each per pair. A last odd
 * block keeps its natural order, which is the order of a 16-byte load's [low | high] nibbles. */
typedef struct {
    int8_t *q;
    float *scale4;
    int32_t *corr4;
} Q4Input;

static void q4_input(const int8_t *restrict xq, const float *restrict xs, int blocks, Q4Input in) {
    int b = 0;
    for (; b + 1 < blocks; b += 2) {
        const int8_t *a0 = xq + (size_t)b * QBLOCK, *a1 = a0 + QBLOCK;
        int8_t *out = in.q + (size_t)b * QBLOCK;
        memcpy(out, a0, 16);
        memcpy(out + 16, a1, 16);
        memcpy(out + 32, a0 + 16, 16);
        memcpy(out + 48, a1 + 16, 16);
    }
    if (b < blocks) memcpy(in.q + (size_t)b * QBLOCK, xq + (size_t)b * QBLOCK, QBLOCK);
    for (b = 0; b < blocks; b++) {
        int32_t sum = 0;
        for (int i = 0; i < QBLOCK; i++) sum += xq[(size_t)b * QBLOCK + i];
        for (int lane = 0; lane < 4; lane++) {
            in.scale4[4 * b + lane] = xs[b];
            in.corr4[4 * b + lane] = 2 * sum;
        }
    }
}

/* Two bf16 scales (4 bytes) → [first ×4 | second ×4] as floats: each lands in a lane's high half. */
static inline __m256 bf16_pair_x4(const uint16_t *scales) {
    int32_t both;
    memcpy(&both, scales, sizeof both);
    const __m256i spread = _mm256_setr_epi8(
        -1, -1, 0, 1, -1, -1, 0, 1, -1, -1, 0, 1, -1, -1, 0, 1,
        -1, -1, 2, 3, -1, -1, 2, 3, -1, -1, 2, 3, -1, -1, 2, 3);
    return _mm256_castsi256_ps(_mm256_shuffle_epi8(_mm256_set1_epi32(both), spread));
}
#endif

#ifdef HAVE_AVX2
/* Block b of x and of a row of int8 weights: their 32 products, summed in 8 lanes. */
static inline __m256 block_dot_q8(const int8_t *restrict xq, const int8_t *restrict w, int b) {
    return dot32_q8(_mm256_loadu_si256((const __m256i *)(xq + (size_t)b * QBLOCK)),
                    _mm256_loadu_si256((const __m256i *)(w + (size_t)b * QBLOCK)));
}
#endif

/* Σ_b xs[b] · (xq_b · w_b) over `blocks` blocks of int8 weights: one row's (partial) dot product. */
static inline float row_dot_int8(const int8_t *restrict xq, const float *restrict xs,
                                 const int8_t *restrict w, int blocks) {
#ifdef HAVE_AVX2
    /* Two accumulators, alternate blocks, as row_dot_q4 has: a mamba-130m int8 step at 2 threads
     * 4.9-5.2 -> 4.6-4.7 ms (alternating rounds, idle 2-core EPYC), the same at 1 thread. */
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int b = 0;
    for (; b + 1 < blocks; b += 2) {
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(xs[b]), block_dot_q8(xq, w, b), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(xs[b + 1]), block_dot_q8(xq, w, b + 1), acc1);
    }
    if (b < blocks) acc0 = _mm256_fmadd_ps(_mm256_set1_ps(xs[b]), block_dot_q8(xq, w, b), acc0);
    return hsum(_mm256_add_ps(acc0, acc1));
#else
    float sum = 0.0f;
    for (int b = 0; b < blocks; b++) {
        int32_t dot = 0;
        for (int i = 0; i < QBLOCK; i++) dot += (int32_t)xq[b * QBLOCK + i] * (int32_t)w[b * QBLOCK + i];
        sum += xs[b] * (float)dot;
    }
    return sum;
#endif
}

/* The same for 4-bit weights with a bf16 scale per block: x as q4_input laid it out (AVX2), or
 * xq, xs as they are (the portable loop). */
#ifdef HAVE_AVX2
/* A 4-bit row's last block b when the blocks are odd in number: 16 bytes, [low nibbles | high
 * nibbles], against x's block in its natural order (q4_input leaves it so). */
static inline float q4_odd_block(Q4Input x, const uint8_t *restrict w, const uint16_t *restrict ws, int b) {
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    const __m128i packed = _mm_loadu_si128((const __m128i *)(w + (size_t)b * (QBLOCK / 2)));
    const __m256i u = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), low4);
    const __m256i a = _mm256_loadu_si256((const __m256i *)(x.q + (size_t)b * QBLOCK));
    const __m256i dots = _mm256_sub_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(u, a), _mm256_set1_epi16(1)),
                                          _mm256_set1_epi32(x.corr4[4 * b] / 2)); /* 8·Σa over 8 lanes */
    return x.scale4[4 * b] * bf16_to_float(ws[b]) * hsum(_mm256_cvtepi32_ps(dots));
}

static inline float row_dot_q4(Q4Input x, const uint8_t *restrict w, const uint16_t *restrict ws, int blocks) {
    const __m256i low4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    /* Two accumulators, alternate pairs: one fma chain would wait on its own latency. */
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int b = 0;
    for (; b + 1 < blocks; b += 2) {
        const __m256i packed = _mm256_loadu_si256((const __m256i *)(w + (size_t)b * (QBLOCK / 2)));
        const __m256i lo = _mm256_and_si256(packed, low4);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4);
        const int8_t *a = x.q + (size_t)b * QBLOCK;
        const __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)a)),
                                               _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(a + 32))));
        const __m256i dots = _mm256_sub_epi32(_mm256_madd_epi16(pairs, ones),
                                              _mm256_loadu_si256((const __m256i *)(x.corr4 + 4 * b)));
        const __m256 scale = _mm256_mul_ps(bf16_pair_x4(ws + b), _mm256_loadu_ps(x.scale4 + 4 * b));
        if ((b & 2) == 0) acc0 = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dots), acc0);
        else acc1 = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dots), acc1);
    }
    float sum = hsum(_mm256_add_ps(acc0, acc1));
    if (b < blocks) sum += q4_odd_block(x, w, ws, b);
    return sum;
}
#else
static inline float row_dot_q4(const int8_t *restrict xq, const float *restrict xs,
                               const uint8_t *restrict w, const uint16_t *restrict ws, int blocks) {
    float sum = 0.0f;
    for (int b = 0; b < blocks; b++) {
        const uint8_t *wb = w + (size_t)b * (QBLOCK / 2);
        const int8_t *ab = xq + (size_t)b * QBLOCK;
        int32_t dot = 0;
        for (int j = 0; j < QBLOCK / 2; j++)
            dot += (int32_t)ab[j] * ((wb[j] & 0x0f) - 8) + (int32_t)ab[j + QBLOCK / 2] * ((wb[j] >> 4) - 8);
        sum += xs[b] * bf16_to_float(ws[b]) * (float)dot;
    }
    return sum;
}
#endif

/* A linear layer, in part: y[o0:o1] = x[i0:i1] · W[i0:i1, o0:o1] (+ bias[o0:o1] when `with_bias`).
 * x is the whole input; for quantized layers xq, xs are its int8 blocks and their scales (i0, i1
 * are multiples of QBLOCK then). y points at output o0. */
static void linear_part(const void *const *layer, const float *x, const int8_t *xq, const float *xs,
                        int in, int out, int i0, int i1, int o0, int o1, int with_bias, float *y) {
    const float *bias = with_bias ? layer[L_B] : NULL;
    const intptr_t kind = (intptr_t)layer[L_KIND];
    if (kind == KIND_F32) {
        matvec(x + i0, (const float *)layer[L_W] + (size_t)i0 * out + o0, out, bias ? bias + o0 : NULL,
               i1 - i0, o1 - o0, 0, y);
        return;
    }
    const int blocks = (i1 - i0) / QBLOCK, b0 = i0 / QBLOCK;
    if (kind == KIND_INT8) {
        for (int o = o0; o < o1; o++) {
            const int8_t *row = (const int8_t *)layer[L_W] + (size_t)o * in + i0;
            for (int line = 0; line < i1 - i0; line += 64) __builtin_prefetch(row + PREFETCH_BYTES + line, 0, 0);
            const float value = row_dot_int8(xq + i0, xs + b0, row, blocks) * ((const float *)layer[L_S])[o];
            y[o - o0] = value + (bias ? bias[o] : 0.0f);
        }
        return;
    }
#ifdef HAVE_AVX2
    /* On the stack: 2·(i1 - i0) bytes, a few KB for any real model's layer (+1: never empty). */
    int8_t q[blocks * QBLOCK + 1] __attribute__((aligned(32)));
    float scale4[4 * blocks + 1] __attribute__((aligned(32)));
    int32_t corr4[4 * blocks + 1] __attribute__((aligned(32)));
    const Q4Input x4 = {q, scale4, corr4};
    q4_input(xq + i0, xs + b0, blocks, x4);
#endif
    for (int o = o0; o < o1; o++) {
        const uint8_t *row = (const uint8_t *)layer[L_W] + (size_t)o * (in / 2) + i0 / 2;
        for (int line = 0; line < (i1 - i0) / 2; line += 64) __builtin_prefetch(row + PREFETCH_BYTES + line, 0, 0);
        const uint16_t *scales = (const uint16_t *)layer[L_S] + (size_t)o * (in / QBLOCK) + b0;
#ifdef HAVE_AVX2
        const float value = row_dot_q4(x4, row, scales, blocks);
#else
        const float value = row_dot_q4(xq + i0, xs + b0, row, scales, blocks);
#endif
        y[o - o0] = value + (bias ? bias[o] : 0.0f);
    }
}

static inline int quantized(const void *const *layer) { return (intptr_t)layer[L_KIND] != KIND_F32; }

/* x quantized for `layer` when its weights are int8 or 4-bit (their dot products read xq, xs). */
static void quantize_for(const void *const *layer, const float *x, int size, int8_t *q, float *s) {
    if (quantized(layer)) quantize_q8(x, size, q, s);
}

/* into += every thread's partial output (`team` rows of `width`), then `bias` if any. Every thread
 * adds the parts in the same order, so each keeps an identical copy of `into`. */
static void add_parts(float *into, const float *parts, int team, int width, const float *bias) {
    for (int part = 0; part < team; part++)
        for (int i = 0; i < width; i++) into[i] += parts[(size_t)part * width + i];
    if (bias)
        for (int i = 0; i < width; i++) into[i] += bias[i];
}

/* [lo, hi): thread t's share of `total` items in runs of `align` (the last run may be short). */
static void share(int total, int align, int t, int threads, int *lo, int *hi) {
    const int runs = (total + align - 1) / align;
    *lo = align * (int)((int64_t)runs * t / threads);
    *hi = align * (int)((int64_t)runs * (t + 1) / threads);
    if (*lo > total) *lo = total;
    if (*hi > total) *hi = total;
}

/* Inside a parallel region: the calling thread's share of `total` items (see share). */
static void team_share(int total, int align, int *lo, int *hi) {
    int t = 0, team = 1;
#ifdef _OPENMP
    t = omp_get_thread_num();
    team = omp_get_num_threads();
#endif
    share(total, align, t, team, lo, hi);
}

/* The output head, thread t's rows of the vocabulary: logits[v0, v1) from the final hidden (d),
 * plus `logit_bias` (vocab floats, or NULL) where given: the constrained decoder's mask row (0 for
 * an allowed token, -inf for a refused one) added while the rows are still in cache, instead of
 * as a separate tensor op after the step (agent/constrain.py; its plain twin is `logits + bias`,
 * the same one fp32 add per element, so both give the same bits). */
static void head_part(const void *const *head, const float *hidden, int8_t *hq, float *hs, int d, int vocab,
                      int t, int team, float *logits, const float *logit_bias) {
    quantize_for(head, hidden, d, hq, hs);
    int v0, v1;
    share(vocab, 16, t, team, &v0, &v1);
    if (v1 > v0) linear_part(head, hidden, hq, hs, d, vocab, 0, d, v0, v1, 1, logits + v0);
    if (logit_bias)
        for (int v = v0; v < v1; v++) logits[v] += logit_bias[v];
}

/* h ← exp(ΔA) h + Δ B x and y = C · h + D x for every channel: the body of `ssm_token`,
 * inlined so that a constant n (16 in every Mamba-1 checkpoint) unrolls the inner loop. */
static inline __attribute__((always_inline)) void
ssm_channels(int d_in, int n, const float *restrict x, const float *restrict delta,
             const float *restrict A2_, const float *restrict B, const float *restrict C,
             const float *restrict D, float *restrict h_all, float *restrict y) {
    for (int c = 0; c < d_in; c++) {
        float *restrict h = h_all + (size_t)c * n;
        const float *restrict a2 = A2_ + (size_t)c * n;
        const float dtc = delta[c], dx = delta[c] * x[c];
        float yc = 0.0f;
#pragma omp simd reduction(+ : yc)
        for (int s = 0; s < n; s++) {
            const float hs = h[s] * exp2_fast(dtc * a2[s]) + dx * B[s];
            h[s] = hs;
            yc += hs * C[s];
        }
        y[c] = yc + x[c] * D[c];
    }
}

/* The selective SSM for one token, fused with Δ's softplus, the skip and the gate:
 *   Δ = softplus(dt);  h ← exp(ΔA) h + Δ B x;  y = (C · h + D x) · SiLU(z)
 * x, dt, z, y: (d_in); B, C: (n); A2 = A·log2 e: (d_in, n); h: (d_in, n), advanced in place;
 * delta: d_in floats of scratch (it may be dt itself). */
static void ssm_token(int d_in, int n, const float *x, const float *dt, const float *A2_,
                      const float *B, const float *C, const float *D, const float *z,
                      float *h_all, float *delta, float *y) {
#pragma omp simd
    for (int c = 0; c < d_in; c++) delta[c] = softplus(dt[c]);
    if (n == 16) ssm_channels(d_in, 16, x, delta, A2_, B, C, D, h_all, y);
    else ssm_channels(d_in, n, x, delta, A2_, B, C, D, h_all, y);
#pragma omp simd
    for (int c = 0; c < d_in; c++) y[c] *= silu(z[c]);
}

/* The causal depthwise convolution of a prompt and its SiLU (the twin: `F.conv1d` over the window
 * in `MambaMixer.forward`), one batch row: x (l rows of d_in, `x_stride` floats apart) → out (l, d_in).
 * The k-1 inputs before the prompt come from conv_state (d_in, k), which ends holding the last k
 * inputs. scratch: (2k-1)·d_in floats. Channels never meet, so the team shares them in lines of
 * 16 floats, each thread its own columns of the scratch and of every row (a prompt of fewer than
 * CONV_ALONE values is left to one thread, for which the team would cost more than it saves). */
enum { CONV_ALONE = 1 << 16 };
void mamba_conv(int64_t l, int32_t d_in, int32_t k, const float *x, int64_t x_stride,
                const float *weight, const float *bias, float *conv_state, float *scratch, float *out,
                int32_t threads) {
    float *taps = scratch;                     /* (k, d_in): the kernel, one row per tap */
    float *history = scratch + (size_t)k * d_in; /* (k-1, d_in): the inputs before the prompt */
#define INPUT(tau) ((tau) < 0 ? history + (size_t)((tau) + k - 1) * d_in : x + (size_t)(tau) * x_stride)
#pragma omp parallel num_threads(threads > 1 && l * d_in >= CONV_ALONE ? threads : 1)
    {
        int c0, c1;
        team_share(d_in, 16, &c0, &c1);
        for (int j = 0; j < k; j++)
            for (int c = c0; c < c1; c++) taps[(size_t)j * d_in + c] = weight[(size_t)c * k + j];
        for (int j = 0; j + 1 < k; j++)
            for (int c = c0; c < c1; c++) history[(size_t)j * d_in + c] = conv_state[(size_t)c * k + j + 1];
        for (int64_t t = 0; t < l && c1 > c0; t++) {
            float *row = out + (size_t)t * d_in;
            for (int c = c0; c < c1; c++) row[c] = bias ? bias[c] : 0.0f;
            for (int j = 0; j < k; j++) {
                const float *input = INPUT(t - (k - 1) + j), *tap = taps + (size_t)j * d_in;
#pragma omp simd
                for (int c = c0; c < c1; c++) row[c] += tap[c] * input[c];
            }
#pragma omp simd
            for (int c = c0; c < c1; c++) row[c] = silu(row[c]);
        }
        for (int j = 0; j < k; j++) {
            const float *input = INPUT(l - k + j);
            for (int c = c0; c < c1; c++) conv_state[(size_t)c * k + j] = input[c];
        }
    }
#undef INPUT
}

/* The selective scan of a prompt (its twin: `selective_scan` in model/mamba.py, plus the softplus,
 * skip and gate around it), one batch row: ssm_token's update over l tokens in order. Rows of x,
 * dt, z, y (d_in floats) and of B, C (n floats) are `*_stride` floats apart; h (d_in, n) is
 * advanced in place. Channels are independent, so the prompt is walked once per tile of
 * SCAN_TILE channels, the tile's state and A held transposed (state by state, channels within)
 * in the thread's region of scratch, threads × SCAN_TILE·(2n + 2) floats, where they stay in L1:
 * a vector then holds 8 channels of one state, and y's sum over the states is a sum of vectors.
 * ssm_token, channel by channel with the n states in a vector, ends every channel with a sum
 * across the vector's lanes and keeps the layer's whole state (96 KB at mamba-130m's shape) in
 * L2; walking the prompt a tile at a time, one layer of mamba-130m's 512-token prompt scans in
 * 0.53–0.58× the time at 1 thread and 0.53–0.64× at 2 (A/B in one process, best of 10, 9 rounds;
 * tiles of 16, 32, 64 and 256 channels measured 0.76, 0.59, 0.55 and 0.52×). Threads share the
 * channels in lines of 16 and walk their own tiles. The prompt is walked SCAN_TOKENS tokens at a
 * time, every tile in turn: a tile reads 512 bytes of each row of x, Δ, z and y, and the other
 * tiles find the run's rows still in L3 (a 2,048-token prompt's whole rows are 50 MB a layer,
 * larger than L3: walked whole, each tile read them from memory again, 0.75× instead of 0.56×). */
enum { SCAN_TILE = 128, SCAN_TOKENS = 256 };
void mamba_scan(int64_t l, int32_t d_in, int32_t n,
                const float *x, int64_t x_stride, const float *dt, int64_t dt_stride,
                const float *A2_, const float *B, const float *C, int64_t bc_stride,
                const float *D, const float *z, int64_t z_stride,
                float *h, float *scratch, float *y, int64_t y_stride, int32_t threads) {
#pragma omp parallel num_threads(threads > 0 ? threads : 1)
    {
        int t = 0, c0, c1;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        team_share(d_in, 16, &c0, &c1); /* in lines of 16 floats; the last tile of a share may be narrower */
        float *restrict hT = scratch + (size_t)t * SCAN_TILE * (2 * n + 2), *restrict aT = hT + (size_t)SCAN_TILE * n;
        float *restrict delta = aT + (size_t)SCAN_TILE * n, *restrict dx = delta + SCAN_TILE;
        for (int64_t s0 = 0; s0 < l; s0 += SCAN_TOKENS) {
            const int64_t s1 = l - s0 < SCAN_TOKENS ? l : s0 + SCAN_TOKENS;
            for (int tile = c0; tile < c1; tile += SCAN_TILE) {
                const int width = c1 - tile < SCAN_TILE ? c1 - tile : SCAN_TILE;
                for (int i = 0; i < width; i++)
                    for (int j = 0; j < n; j++) {
                        hT[(size_t)j * width + i] = h[(size_t)(tile + i) * n + j];
                        aT[(size_t)j * width + i] = A2_[(size_t)(tile + i) * n + j];
                    }
                for (int64_t s = s0; s < s1; s++) {
                    const float *restrict xs = x + s * x_stride + tile, *restrict dts = dt + s * dt_stride + tile;
                    const float *restrict b = B + s * bc_stride, *restrict c = C + s * bc_stride;
                    float *restrict ys = y + s * y_stride + tile;
#pragma omp simd
                    for (int i = 0; i < width; i++) {
                        delta[i] = softplus(dts[i]);
                        dx[i] = delta[i] * xs[i];
                        ys[i] = D[tile + i] * xs[i];
                    }
                    for (int j = 0; j < n; j++) {
                        float *restrict row = hT + (size_t)j * width;
                        const float *restrict a = aT + (size_t)j * width;
                        const float bj = b[j], cj = c[j];
#pragma omp simd
                        for (int i = 0; i < width; i++) {
                            const float value = row[i] * exp2_fast(delta[i] * a[i]) + dx[i] * bj;
                            row[i] = value;
                            ys[i] += value * cj;
                        }
                    }
                    const float *restrict zs = z + s * z_stride + tile;
#pragma omp simd
                    for (int i = 0; i < width; i++) ys[i] *= silu(zs[i]);
                }
                for (int i = 0; i < width; i++)
                    for (int j = 0; j < n; j++) h[(size_t)(tile + i) * n + j] = hT[(size_t)j * width + i];
            }
        }
    }
}

/* One row of a Mamba-2 head's state, one token: h ← decay·h + dx·B, and C·h (the step's and the
 * prompt scan's shared body). */
static inline __attribute__((always_inline)) float
ssd_row(int n, float *restrict h, float decay, float dx, const float *restrict B, const float *restrict C) {
    float y = 0.0f;
#pragma omp simd reduction(+ : y)
    for (int j = 0; j < n; j++) {
        const float value = h[j] * decay + dx * B[j];
        h[j] = value;
        y += value * C[j];
    }
    return y;
}

/* One token's update of `width` rows (i) of a head whose state is stored transposed, hT[j][i]
 * (rows `stride` floats apart): hT[j][i] ← decay·hT[j][i] + dx[i]·b[j] and y[i] = Σ_j hT[j][i]·c[j].
 * With i innermost, a vector holds 8 rows and each row keeps its own accumulator, where a row at
 * a time (ssd_row) sums n products in one chain that waits on its own latency. `ssd_tile32` is the
 * same for 32 rows in GCC/Clang vector types, so that the four accumulators stay in registers
 * (with an array, GCC kept them on the stack and every j waited on a store and a reload).
 * The scan of a 512-token prompt at the mamba2-130m shape (24 heads of 64 × 128), one layer, one
 * thread: 26.9 ms a row at a time, 16.7 ms in whole transposed heads, 10.1 ms in tiles of 32 rows
 * (mamba2_scan says why); later (session 21, the same shape) 6.1 ms in tiles of 32 rows and 4.4 ms with
 * the decay taken out of the tile, two tokens a pass (mamba2_scan). */
static inline __attribute__((always_inline)) void
ssd_tile(int width, int n, int stride, float *restrict hT, float decay, const float *restrict dx,
         const float *restrict b, const float *restrict c, float *restrict y) {
    for (int i = 0; i < width; i++) y[i] = 0.0f;
    for (int j = 0; j < n; j++) {
        float *restrict row = hT + (size_t)j * stride;
        const float bj = b[j], cj = c[j];
#pragma omp simd
        for (int i = 0; i < width; i++) {
            const float value = row[i] * decay + dx[i] * bj;
            row[i] = value;
            y[i] += value * cj;
        }
    }
}

enum { SSD_TILE = 32 }; /* rows per tile: ssd_tile32's */
typedef float f32x8 __attribute__((vector_size(32)));
static inline f32x8 load8(const float *from) { f32x8 v; memcpy(&v, from, sizeof v); return v; }
static inline void store8(float *to, f32x8 v) { memcpy(to, &v, sizeof v); }

static inline void ssd_tile32(int n, int stride, float *restrict hT, float decay, const float *restrict dx,
                              const float *restrict b, const float *restrict c, float *restrict y) {
    const f32x8 dx0 = load8(dx), dx1 = load8(dx + 8), dx2 = load8(dx + 16), dx3 = load8(dx + 24);
    f32x8 acc0 = {0}, acc1 = {0}, acc2 = {0}, acc3 = {0};
    for (int j = 0; j < n; j++) {
        float *restrict row = hT + (size_t)j * stride;
        const float bj = b[j], cj = c[j];
        const f32x8 v0 = load8(row) * decay + dx0 * bj, v1 = load8(row + 8) * decay + dx1 * bj;
        const f32x8 v2 = load8(row + 16) * decay + dx2 * bj, v3 = load8(row + 24) * decay + dx3 * bj;
        store8(row, v0), store8(row + 8, v1), store8(row + 16, v2), store8(row + 24, v3);
        acc0 += v0 * cj, acc1 += v1 * cj, acc2 += v2 * cj, acc3 += v3 * cj;
    }
    store8(y, acc0), store8(y + 8, acc1), store8(y + 16, acc2), store8(y + 24, acc3);
}

/* Two tokens' ssd_tile32 with no decay between them (mamba2_scan's tile carries it): the tile is
 * read and written once for both. */
static inline void ssd_tile32_pair(int n, float *restrict hT, const float *restrict dx, const float *restrict dx_next,
                                   const float *restrict b, const float *restrict c, const float *restrict b_next,
                                   const float *restrict c_next, float *restrict y, float *restrict y_next) {
    const f32x8 dx0 = load8(dx), dx1 = load8(dx + 8), dx2 = load8(dx + 16), dx3 = load8(dx + 24);
    const f32x8 ex0 = load8(dx_next), ex1 = load8(dx_next + 8), ex2 = load8(dx_next + 16), ex3 = load8(dx_next + 24);
    f32x8 acc0 = {0}, acc1 = {0}, acc2 = {0}, acc3 = {0}, bcc0 = {0}, bcc1 = {0}, bcc2 = {0}, bcc3 = {0};
    for (int j = 0; j < n; j++) {
        float *restrict row = hT + (size_t)j * SSD_TILE;
        const float bj = b[j], cj = c[j], bk = b_next[j], ck = c_next[j];
        f32x8 v0 = load8(row), v1 = load8(row + 8), v2 = load8(row + 16), v3 = load8(row + 24);
        v0 += dx0 * bj, v1 += dx1 * bj, v2 += dx2 * bj, v3 += dx3 * bj;
        acc0 += v0 * cj, acc1 += v1 * cj, acc2 += v2 * cj, acc3 += v3 * cj;
        v0 += ex0 * bk, v1 += ex1 * bk, v2 += ex2 * bk, v3 += ex3 * bk;
        bcc0 += v0 * ck, bcc1 += v1 * ck, bcc2 += v2 * ck, bcc3 += v3 * ck;
        store8(row, v0), store8(row + 8, v1), store8(row + 16, v2), store8(row + 24, v3);
    }
    store8(y, acc0), store8(y + 8, acc1), store8(y + 16, acc2), store8(y + 24, acc3);
    store8(y_next, bcc0), store8(y_next + 8, bcc1), store8(y_next + 16, bcc2), store8(y_next + 24, bcc3);
}

/* How small the decay carried outside a tile may grow before it is folded back into the tile
 * (mamba2_scan): the newest terms of the tile are then at most 2^24 times its oldest. */
#define SSD_FOLD_BELOW 0x1p-24f

/* The Mamba-2 scan of a prompt (its twin: `ssd_scan` in model/mamba2.py, plus the skip), one batch
 * row: token by token, each head's state H (p, n) ← exp(Δ A) H + Δ x Bᵀ and y = H C + D x, with
 * Δ already softplus'd and clamped. Rows of x and y (heads·p floats) are `x_stride`/`y_stride`
 * floats apart, of dt (heads floats) `dt_stride`, of B and C (groups·n floats, a head reads its
 * group's) `bc_stride`; A2 = A·log2 e and D per head; h (heads, p, n) is advanced in place.
 * The chunked SSD form trades this loop for matrix products, which pays on a GPU; on a CPU a tile
 * of a head's state (SSD_TILE rows × n floats, 16 KB at n = 128) stays in the L1 cache while the
 * loop walks the prompt, so each thread takes whole heads and walks the prompt once per tile, the
 * tile transposed (ssd_tile) into the thread's region of scratch, beside two rows of Δ x:
 * threads × SSD_TILE·(n + 2) floats.
 *
 * The decay is one number per head and token, so the tile holds H / G, where G is the product of
 * the decays since the tile was last made whole: a token then adds (Δ x / G) Bᵀ and reads
 * y = G·(tile · C), two multiply-adds per state element where H's own update takes three. When G
 * would fall below SSD_FOLD_BELOW (or the decay is 0) that token's decay times G is applied to
 * the tile, as the plain update does, and G starts again at 1; H = G·tile is written back at the
 * end. Each value is the plain loop's up to rounding: the tile's newest terms are at most 2^24
 * times its oldest, whose share of H is below G's, so what rounding drops of them is what
 * rounding H itself would drop. Two tokens with no fold between them share one pass over the tile
 * (ssd_tile32_pair): one load and one store of each element for four multiply-adds. A 512-token
 * prompt at mamba2-130m's shape, one layer, the old loop and this one alternating in one process
 * (best of 10, 9 rounds): 0.70–0.72× the time at 1 thread, 0.66–0.86× at 2. */
void mamba2_scan(int64_t l, int32_t heads, int32_t p, int32_t n, int32_t groups,
                 const float *x, int64_t x_stride, const float *dt, int64_t dt_stride,
                 const float *A2, const float *B, const float *C, int64_t bc_stride, const float *D,
                 float *h, float *y, int64_t y_stride, float *scratch, int32_t threads) {
    const int per_group = heads / groups;
#pragma omp parallel num_threads(threads > 0 ? threads : 1)
    {
        int h0, h1, t = 0;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        team_share(heads, 1, &h0, &h1);
        float *restrict hT = scratch + (size_t)t * SSD_TILE * (n + 2), *restrict dx = hT + (size_t)SSD_TILE * n;
        for (int head = h0; head < h1; head++) {
            const size_t group = (size_t)(head / per_group) * n;
            /* Rows of a head never meet, so each tile of SSD_TILE rows walks the whole prompt alone:
             * its state (n × SSD_TILE floats, 16 KB at n = 128) stays in L1, where the whole head's
             * (32 KB) did not fit beside B and C. */
            for (int i0 = 0; i0 < p; i0 += SSD_TILE) {
                const int width = p - i0 < SSD_TILE ? p - i0 : SSD_TILE;
                float *restrict state = h + ((size_t)head * p + i0) * n;
                for (int i = 0; i < width; i++)
                    for (int j = 0; j < n; j++) hT[(size_t)j * width + i] = state[(size_t)i * n + j];
                float carried = 1.0f; /* G: H = G · the tile */
                float *restrict dx_next = dx + SSD_TILE;
                for (int64_t s = 0; s < l; s++) {
                    const float delta = dt[s * dt_stride + head], decay = exp2_fast(delta * A2[head]);
                    const float *restrict b = B + s * bc_stride + group, *restrict c = C + s * bc_stride + group;
                    const float *restrict xs = x + s * x_stride + (size_t)head * p + i0;
                    float *restrict ys = y + s * y_stride + (size_t)head * p + i0;
                    if (width == SSD_TILE && s + 1 < l) {
                        const float delta1 = dt[(s + 1) * dt_stride + head], decay1 = exp2_fast(delta1 * A2[head]);
                        const float g0 = carried * decay, g1 = g0 * decay1;
                        if (g0 >= SSD_FOLD_BELOW && g1 >= SSD_FOLD_BELOW) {
                            const float *restrict xs1 = xs + x_stride;
                            float *restrict ys1 = ys + y_stride;
                            const float spread = delta / g0, spread1 = delta1 / g1;
                            for (int i = 0; i < SSD_TILE; i++) dx[i] = spread * xs[i], dx_next[i] = spread1 * xs1[i];
                            ssd_tile32_pair(n, hT, dx, dx_next, b, c, b + bc_stride, c + bc_stride, ys, ys1);
                            for (int i = 0; i < SSD_TILE; i++) {
                                ys[i] = g0 * ys[i] + D[head] * xs[i];
                                ys1[i] = g1 * ys1[i] + D[head] * xs1[i];
                            }
                            carried = g1;
                            s++;
                            continue;
                        }
                    }
                    float applied = 1.0f; /* the decay this token applies to the tile */
                    if (carried * decay < SSD_FOLD_BELOW) applied = carried * decay, carried = 1.0f;
                    else carried *= decay;
                    const float spread = delta / carried;
                    for (int i = 0; i < width; i++) dx[i] = spread * xs[i];
                    if (width == SSD_TILE) ssd_tile32(n, SSD_TILE, hT, applied, dx, b, c, ys);
                    else ssd_tile(width, n, width, hT, applied, dx, b, c, ys);
                    for (int i = 0; i < width; i++) ys[i] = carried * ys[i] + D[head] * xs[i];
                }
                for (int i = 0; i < width; i++)
                    for (int j = 0; j < n; j++) state[(size_t)i * n + j] = carried * hT[(size_t)j * width + i];
            }
        }
    }
}

/* Mamba-2's gated RMS norm over a prompt (its twin: `GatedRMSNorm.forward` in model/mamba2.py):
 * per token and per group of d_in / groups channels, g = y · SiLU(z), then g / rms(g) · weight.
 * Rows of y and out are d_in floats apart, of z `z_stride` (a view into in_proj's output). In
 * PyTorch this is six passes over (l, d_in) -- SiLU, two products, the square, the mean and the
 * scale; here it is one pass that writes g and sums its squares, and a second over the row still
 * in the cache. Tokens are shared across the team. A 512-token prompt, 1 thread, CPU time, old
 * and new alternating in one process: 0.92-0.96x the time on the built-in model's shapes (d_in
 * 384), 0.96-0.98x on mamba2-130m's, where in_proj and out_proj are most of it. */
void mamba2_gate_norm(int64_t l, int32_t d_in, int32_t groups, const float *y, const float *z,
                      int64_t z_stride, const float *weight, float eps, float *out, int32_t threads) {
    const int size = d_in / groups;
#pragma omp parallel for num_threads(threads > 0 ? threads : 1) schedule(static)
    for (int64_t s = 0; s < l; s++) {
        const float *restrict ys = y + s * d_in, *restrict zs = z + s * z_stride;
        float *restrict os = out + s * d_in;
        for (int g = 0; g < groups; g++) {
            const int c0 = g * size;
            float square = 0.0f;
#pragma omp simd reduction(+ : square)
            for (int c = c0; c < c0 + size; c++) {
                const float gated = ys[c] * silu(zs[c]);
                os[c] = gated;
                square += gated * gated;
            }
            const float scale = 1.0f / sqrtf(square / (float)size + eps);
#pragma omp simd
            for (int c = c0; c < c0 + size; c++) os[c] = os[c] * scale * weight[c];
        }
    }
}

/* A prompt through an int8 or 4-bit linear layer (its twin: `Int8Linear.forward` and
 * `Q4Linear.forward`, `_blockwise` in model/quantize.py): y (rows, out) = x (rows, in) · Wᵀ
 * (+ bias), every row of x quantized per block of 32 as the decode step quantizes its token
 * (quantize_q8), every block's dot product an integer one, so a prompt and the steps after it
 * read the same numbers. The step's linear_part reads each weight row once per token, which for
 * a prompt is a pass over all the weights per token; here the rows are taken a panel at a time
 * (PROMPT_PANEL_BYTES, so the panel stays in L1) and every tile of PROMPT_TOKENS tokens runs
 * against it PROMPT_ROWS rows at a time: a weight vector is loaded once per tile of tokens and an
 * activation vector once per tile of rows. The team first quantizes the tokens together, then
 * splits the output rows, so every weight is read by one thread.
 *
 * With AVX-512 VNNI (vpdpbusd: unsigned by signed bytes straight into 32-bit sums) the vectors
 * are 512 bits, two int8 blocks or four 4-bit blocks a load, and an int8 token is stored as
 * q + 128, unsigned, each row's blocks starting their sums at -128·Σw. With AVX2 alone, 256 bits,
 * maddubs, an int8 token stored as |q| and q (q's signs moved onto w, as row_dot_int8 does).
 * 4-bit weights are unsigned already (u = q + 8; the token's 8·Σa is taken off, as in q4_input).
 * The integer sums are exact, so only the order of the float sums differs from the twin. */
#if defined(HAVE_AVX2) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define HAVE_VNNI512 1
#endif
#ifndef PROMPT_TOKENS
#define PROMPT_TOKENS 4
#endif
/* Rows a tile: with AVX-512's 32 vector registers a tile of 4 × 6 keeps its 24 sums and the rows'
 * unpacked 4-bit halves in registers; AVX2 has 16, enough for 4 × 2. At mamba2-130m's in_proj and
 * out_proj shapes (512 tokens, 1 thread, best of 15, one process; session 21): 4-bit 128.5 → 151.8
 * and 145.0 → 158.5 GOP/s, int8 141.6 → 143.0 and 147.9 → 146.8, a 7-token prompt 113 → 137
 * (4-bit) and 122 → 126 (int8), where 4 × 4, 5 × 4, 3 × 6 and 6 × 4 each lost in one of them. */
#ifndef PROMPT_ROWS
#ifdef HAVE_VNNI512
#define PROMPT_ROWS 6
#else
#define PROMPT_ROWS 2
#endif
#endif
#ifndef PROMPT_PANEL_BYTES
#define PROMPT_PANEL_BYTES 16384
#endif

/* One token of a prompt as the quantized rows read it (its part of the scratch). */
typedef struct {
    const int8_t *q;        /* the int8 values (4-bit rows: laid out by prompt_token_fill) */
    const uint8_t *aux;     /* int8 rows: q + 128 (VNNI) or |q| (AVX2) */
    const float *scale;     /* per block */
    const float *scale8;    /* int8 rows under VNNI: each block's scale 8 times (a 512-bit load is two blocks) */
#ifdef HAVE_AVX2
    Q4Input q4;             /* 4-bit rows (q4.q is q) */
#endif
} PromptToken;

static size_t prompt_token_bytes(int in) {
    const size_t blocks = (size_t)in / QBLOCK, bytes = 2 * (size_t)in + 52 * blocks;
    return (bytes + 63) & ~(size_t)63;
}

/* Token s's parts in the scratch: q (in bytes), aux (in), scale (blocks floats), scale8 / scale4
 * (8·blocks floats; 4-bit rows use the first half), corr4 (4·blocks int32). */
static PromptToken prompt_token(uint8_t *scratch, int in, int64_t s) {
    uint8_t *base = scratch + (size_t)s * prompt_token_bytes(in);
    const size_t blocks = (size_t)in / QBLOCK, scales = 2 * (size_t)in + 4 * blocks;
    PromptToken token;
    token.q = (const int8_t *)base;
    token.aux = base + in;
    token.scale = (const float *)(base + 2 * (size_t)in);
    token.scale8 = (const float *)(base + scales);
#ifdef HAVE_AVX2
    token.q4.q = (int8_t *)base;
    token.q4.scale4 = (float *)(base + scales);
    token.q4.corr4 = (int32_t *)(base + scales + 32 * blocks);
#endif
    return token;
}

/* Quantize x (in) into token s's scratch, laid out for `kind`'s rows. 4-bit rows under VNNI read
 * four blocks a load: each quad of blocks is stored as its four low halves (elements 0..15 of each,
 * which meet a weight byte's low nibbles) and then its four high halves; the blocks after the last
 * quad are laid out by q4_input, for the 256-bit code. */
static void prompt_token_fill(uint8_t *scratch, int in, int64_t s, const float *x, intptr_t kind) {
    const PromptToken token = prompt_token(scratch, in, s);
    int8_t *q = (int8_t *)token.q;
    uint8_t *aux = (uint8_t *)token.aux;
    float *scale = (float *)token.scale;
#ifdef HAVE_AVX2
    const int blocks = in / QBLOCK;
    if (kind == KIND_Q4) {
        const int8_t *natural = (const int8_t *)aux;
        quantize_q8(x, in, (int8_t *)aux, scale);
        q4_input(natural, scale, blocks, token.q4); /* every block's scale4 and corr4, and the pairs' order */
#ifdef HAVE_VNNI512
        for (int b = 0; b + 3 < blocks; b += 4)
            for (int k = 0; k < 4; k++) {
                memcpy(q + (size_t)b * QBLOCK + 16 * k, natural + (size_t)(b + k) * QBLOCK, 16);
                memcpy(q + (size_t)b * QBLOCK + 64 + 16 * k, natural + (size_t)(b + k) * QBLOCK + 16, 16);
            }
#endif
        return;
    }
    quantize_q8(x, in, q, scale);
    for (int i = 0; i < in; i++) {
#ifdef HAVE_VNNI512
        aux[i] = (uint8_t)(q[i] + 128);
#else
        aux[i] = (uint8_t)(q[i] < 0 ? -q[i] : q[i]);
#endif
    }
#ifdef HAVE_VNNI512
    float *scale8 = (float *)token.scale8;
    for (int b = 0; b < blocks; b++)
        for (int lane = 0; lane < 8; lane++) scale8[8 * b + lane] = scale[b];
#endif
#else
    (void)kind;
    (void)aux;
    quantize_q8(x, in, q, scale);
#endif
}

#ifdef HAVE_VNNI512
/* Four bf16 scales (8 bytes) → a 512-bit vector, the k-th scale in the k-th 128-bit lane, 4 times. */
static inline __m512 bf16_quad_x4(const uint16_t *scales) {
    int64_t four;
    memcpy(&four, scales, sizeof four);
    /* Per 128-bit lane k, each dword takes bytes 2k, 2k+1 into its high half (0x80: a zero byte). */
    const __m512i spread = _mm512_set_epi32(
        0x07068080, 0x07068080, 0x07068080, 0x07068080, 0x05048080, 0x05048080, 0x05048080, 0x05048080,
        0x03028080, 0x03028080, 0x03028080, 0x03028080, 0x01008080, 0x01008080, 0x01008080, 0x01008080);
    return _mm512_castsi512_ps(_mm512_shuffle_epi8(_mm512_set1_epi64(four), spread));
}

/* out[i] = the sum of acc[i]'s 16 lanes, for the `count` accumulators of a tile: eight at a time
 * through one tree of horizontal adds (25 operations where eight separate reductions take 64; a
 * tile's loop over a mamba-130m row is only 12 pairs of blocks, so the reductions were a sixth
 * of it). */
static inline void sum_lanes(const __m512 *acc, int count, float *out) {
    int i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 half[8];
        for (int k = 0; k < 8; k++)
            half[k] = _mm256_add_ps(_mm512_castps512_ps256(acc[i + k]), _mm512_extractf32x8_ps(acc[i + k], 1));
        const __m256 h01 = _mm256_hadd_ps(half[0], half[1]), h23 = _mm256_hadd_ps(half[2], half[3]);
        const __m256 h45 = _mm256_hadd_ps(half[4], half[5]), h67 = _mm256_hadd_ps(half[6], half[7]);
        const __m256 low = _mm256_hadd_ps(h01, h23), high = _mm256_hadd_ps(h45, h67); /* per 128-bit lane */
        _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_permute2f128_ps(low, high, 0x20),
                                                _mm256_permute2f128_ps(low, high, 0x31)));
    }
    for (; i < count; i++) out[i] = _mm512_reduce_add_ps(acc[i]);
}

/* The int8 dot product of block b of a token (as q + 128) and of a row: 256 bits, for a last odd block. */
static inline float int8_block_vnni(const PromptToken *token, const int8_t *w, int b) {
    const __m256i weights = _mm256_loadu_si256((const __m256i *)(w + (size_t)b * QBLOCK));
    const __m256i start = _mm256_sub_epi32(_mm256_setzero_si256(),
                                           _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8((char)0x80), weights));
    const __m256i a = _mm256_loadu_si256((const __m256i *)(token->aux + (size_t)b * QBLOCK));
    return token->scale[b] * hsum(_mm256_cvtepi32_ps(_mm256_dpbusd_epi32(start, a, weights)));
}
#endif

/* out[t][r] = Σ_b scale_t[b] · (token t's block b · row r's block b), PROMPT_TOKENS tokens by
 * PROMPT_ROWS int8 rows. */
static inline void int8_tile(const PromptToken *tokens, const int8_t *const *rows, int blocks,
                             float out[PROMPT_TOKENS][PROMPT_ROWS]) {
#if defined(HAVE_VNNI512)
    __m512 acc[PROMPT_TOKENS][PROMPT_ROWS];
    for (int t = 0; t < PROMPT_TOKENS; t++)
        for (int r = 0; r < PROMPT_ROWS; r++) acc[t][r] = _mm512_setzero_ps();
    int b = 0;
    for (; b + 1 < blocks; b += 2) {
        __m512i w[PROMPT_ROWS], start[PROMPT_ROWS];
        for (int r = 0; r < PROMPT_ROWS; r++) {
            w[r] = _mm512_loadu_si512(rows[r] + (size_t)b * QBLOCK);
            start[r] = _mm512_sub_epi32(_mm512_setzero_si512(),
                                        _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8((char)0x80), w[r]));
        }
        for (int t = 0; t < PROMPT_TOKENS; t++) {
            const __m512 scale = _mm512_loadu_ps(tokens[t].scale8 + 8 * b);
            const __m512i a = _mm512_loadu_si512(tokens[t].aux + (size_t)b * QBLOCK);
            for (int r = 0; r < PROMPT_ROWS; r++)
                acc[t][r] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(start[r], a, w[r])), acc[t][r]);
        }
    }
    sum_lanes(&acc[0][0], PROMPT_TOKENS * PROMPT_ROWS, &out[0][0]);
    if (b < blocks)
        for (int t = 0; t < PROMPT_TOKENS; t++)
            for (int r = 0; r < PROMPT_ROWS; r++) out[t][r] += int8_block_vnni(&tokens[t], rows[r], b);
#elif defined(HAVE_AVX2)
    __m256 acc[PROMPT_TOKENS][PROMPT_ROWS];
    for (int t = 0; t < PROMPT_TOKENS; t++)
        for (int r = 0; r < PROMPT_ROWS; r++) acc[t][r] = _mm256_setzero_ps();
    for (int b = 0; b < blocks; b++) {
        __m256i w[PROMPT_ROWS];
        for (int r = 0; r < PROMPT_ROWS; r++) w[r] = _mm256_loadu_si256((const __m256i *)(rows[r] + (size_t)b * QBLOCK));
        for (int t = 0; t < PROMPT_TOKENS; t++) {
            const __m256 scale = _mm256_broadcast_ss(tokens[t].scale + b);
            const __m256i a = _mm256_loadu_si256((const __m256i *)(tokens[t].aux + (size_t)b * QBLOCK));
            const __m256i signs = _mm256_loadu_si256((const __m256i *)(tokens[t].q + (size_t)b * QBLOCK));
            for (int r = 0; r < PROMPT_ROWS; r++) {
                const __m256i dot = _mm256_madd_epi16(_mm256_maddubs_epi16(a, _mm256_sign_epi8(w[r], signs)),
                                                      _mm256_set1_epi16(1));
                acc[t][r] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dot), acc[t][r]);
            }
        }
    }
    for (int t = 0; t < PROMPT_TOKENS; t++)
        for (int r = 0; r < PROMPT_ROWS; r++) out[t][r] = hsum(acc[t][r]);
#else
    for (int t = 0; t < PROMPT_TOKENS; t++)
        for (int r = 0; r < PROMPT_ROWS; r++) out[t][r] = row_dot_int8(tokens[t].q, tokens[t].scale, rows[r], blocks);
#endif
}

/* The same for PROMPT_ROWS 4-bit rows (bytes, and bf16 scales per block). */
static inline void q4_tile(const PromptToken *tokens, const uint8_t *const *rows, const uint16_t *const *scales,
                           int blocks, float out[PROMPT_TOKENS][PROMPT_ROWS]) {
#ifdef HAVE_AVX2
    int b = 0;
    float sums[PROMPT_TOKENS][PROMPT_ROWS] = {{0.0f}};
#ifdef HAVE_VNNI512
    {
        const __m512i low4 = _mm512_set1_epi8(0x0f);
        __m512 acc[PROMPT_TOKENS][PROMPT_ROWS];
        for (int t = 0; t < PROMPT_TOKENS; t++)
            for (int r = 0; r < PROMPT_ROWS; r++) acc[t][r] = _mm512_setzero_ps();
        for (; b + 3 < blocks; b += 4) { /* a quad of blocks a load: 64 bytes, element j and j+16 in byte j */
            __m512i lo[PROMPT_ROWS], hi[PROMPT_ROWS];
            __m512 row_scale[PROMPT_ROWS];
            for (int r = 0; r < PROMPT_ROWS; r++) {
                const __m512i packed = _mm512_loadu_si512(rows[r] + (size_t)b * (QBLOCK / 2));
                lo[r] = _mm512_and_si512(packed, low4);
                hi[r] = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low4);
                row_scale[r] = bf16_quad_x4(scales[r] + b);
            }
            for (int t = 0; t < PROMPT_TOKENS; t++) {
                const int8_t *a = tokens[t].q4.q + (size_t)b * QBLOCK;
                const __m512i a_lo = _mm512_loadu_si512(a), a_hi = _mm512_loadu_si512(a + 64);
                /* Each row's sums start at -8·Σa, so no subtraction follows them. */
                const __m512i start = _mm512_sub_epi32(_mm512_setzero_si512(),
                                                       _mm512_loadu_si512(tokens[t].q4.corr4 + 4 * b));
                const __m512 token_scale = _mm512_loadu_ps(tokens[t].q4.scale4 + 4 * b);
                for (int r = 0; r < PROMPT_ROWS; r++) {
                    const __m512i dots = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(start, lo[r], a_lo), hi[r], a_hi);
                    acc[t][r] = _mm512_fmadd_ps(_mm512_mul_ps(row_scale[r], token_scale), _mm512_cvtepi32_ps(dots),
                                                acc[t][r]);
                }
            }
        }
        sum_lanes(&acc[0][0], PROMPT_TOKENS * PROMPT_ROWS, &sums[0][0]);
    }
#endif
    if (b + 1 < blocks) { /* (with VNNI, only where the quads leave a pair) */
        const __m256i low4 = _mm256_set1_epi8(0x0f);
        __m256 acc[PROMPT_TOKENS][PROMPT_ROWS];
        for (int t = 0; t < PROMPT_TOKENS; t++)
            for (int r = 0; r < PROMPT_ROWS; r++) acc[t][r] = _mm256_setzero_ps();
        for (; b + 1 < blocks; b += 2) { /* a pair of blocks a load, as in row_dot_q4 */
            __m256i lo[PROMPT_ROWS], hi[PROMPT_ROWS];
            __m256 row_scale[PROMPT_ROWS];
            for (int r = 0; r < PROMPT_ROWS; r++) {
                const __m256i packed = _mm256_loadu_si256((const __m256i *)(rows[r] + (size_t)b * (QBLOCK / 2)));
                lo[r] = _mm256_and_si256(packed, low4);
                hi[r] = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low4);
                row_scale[r] = bf16_pair_x4(scales[r] + b);
            }
            for (int t = 0; t < PROMPT_TOKENS; t++) {
                const int8_t *a = tokens[t].q4.q + (size_t)b * QBLOCK;
                const __m256i a0 = _mm256_loadu_si256((const __m256i *)a);
                const __m256i a1 = _mm256_loadu_si256((const __m256i *)(a + 32));
                const __m256i corr = _mm256_loadu_si256((const __m256i *)(tokens[t].q4.corr4 + 4 * b));
                const __m256 token_scale = _mm256_loadu_ps(tokens[t].q4.scale4 + 4 * b);
                for (int r = 0; r < PROMPT_ROWS; r++) {
                    const __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(lo[r], a0), _mm256_maddubs_epi16(hi[r], a1));
                    const __m256i dots = _mm256_sub_epi32(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)), corr);
                    acc[t][r] = _mm256_fmadd_ps(_mm256_mul_ps(row_scale[r], token_scale), _mm256_cvtepi32_ps(dots),
                                                acc[t][r]);
                }
            }
        }
        for (int t = 0; t < PROMPT_TOKENS; t++)
            for (int r = 0; r < PROMPT_ROWS; r++) sums[t][r] += hsum(acc[t][r]);
    }
    for (int t = 0; t < PROMPT_TOKENS; t++)
        for (int r = 0; r < PROMPT_ROWS; r++)
            out[t][r] = sums[t][r] + (b < blocks ? q4_odd_block(tokens[t].q4, rows[r], scales[r], b) : 0.0f);
#else
    for (int t = 0; t < PROMPT_TOKENS; t++)
        for (int r = 0; r < PROMPT_ROWS; r++)
            out[t][r] = row_dot_q4(tokens[t].q, tokens[t].scale, rows[r], scales[r], blocks);
#endif
}

/* Bytes of scratch quantized_rows needs for `rows` tokens of `in` features. */
int64_t quantized_rows_scratch(int64_t rows, int32_t in) { return rows * (int64_t)prompt_token_bytes(in) + 64; }

/* layer: a linear layer's four pointers (weight, bias, scales, kind), int8 or 4-bit;
 * x: rows of `in` floats, x_stride apart; y: rows of `out` floats, y_stride apart. */
void quantized_rows(const void *const *layer, int64_t rows, int32_t in, int32_t out, const float *x,
                    int64_t x_stride, float *y, int64_t y_stride, void *scratch_, int32_t threads) {
    uint8_t *scratch = (uint8_t *)(((uintptr_t)scratch_ + 63) & ~(uintptr_t)63);
    const intptr_t kind = (intptr_t)layer[L_KIND];
    const float *bias = layer[L_B];
    const int blocks = in / QBLOCK;
    const size_t row_bytes = kind == KIND_INT8 ? (size_t)in : (size_t)in / 2;
    int panel = (int)(PROMPT_PANEL_BYTES / row_bytes) / PROMPT_ROWS * PROMPT_ROWS;
    if (panel < PROMPT_ROWS) panel = PROMPT_ROWS;
#pragma omp parallel num_threads(threads > 0 ? threads : 1)
    {
#pragma omp for schedule(static)
        for (int64_t s = 0; s < rows; s++) prompt_token_fill(scratch, in, s, x + s * x_stride, kind);
        /* (the for's barrier: every token is quantized before any row reads it) */
        int o0, o1;
        team_share(out, PROMPT_ROWS, &o0, &o1);
        for (int p0 = o0; p0 < o1; p0 += panel) {
            const int p1 = p0 + panel < o1 ? p0 + panel : o1;
            for (int64_t s0 = 0; s0 < rows; s0 += PROMPT_TOKENS) {
                /* A short last tile repeats its last token, and a short last run of rows its last
                 * row; the repeats' sums are not stored. */
                PromptToken tokens[PROMPT_TOKENS];
                for (int t = 0; t < PROMPT_TOKENS; t++)
                    tokens[t] = prompt_token(scratch, in, s0 + t < rows ? s0 + t : rows - 1);
                const int stored = rows - s0 < PROMPT_TOKENS ? (int)(rows - s0) : PROMPT_TOKENS;
                for (int o = p0; o < p1; o += PROMPT_ROWS) {
                    int index[PROMPT_ROWS];
                    for (int r = 0; r < PROMPT_ROWS; r++) index[r] = o + r < p1 ? o + r : p1 - 1;
                    float sums[PROMPT_TOKENS][PROMPT_ROWS];
                    if (kind == KIND_INT8) {
                        const int8_t *w = (const int8_t *)layer[L_W], *tile_rows[PROMPT_ROWS];
                        for (int r = 0; r < PROMPT_ROWS; r++) tile_rows[r] = w + (size_t)index[r] * in;
                        int8_tile(tokens, tile_rows, blocks, sums);
                        const float *row_scale = (const float *)layer[L_S];
                        for (int t = 0; t < stored; t++)
                            for (int r = 0; r < PROMPT_ROWS; r++) sums[t][r] *= row_scale[index[r]];
                    } else {
                        const uint8_t *w = (const uint8_t *)layer[L_W], *tile_rows[PROMPT_ROWS];
                        const uint16_t *ws = (const uint16_t *)layer[L_S], *tile_scales[PROMPT_ROWS];
                        for (int r = 0; r < PROMPT_ROWS; r++) {
                            tile_rows[r] = w + (size_t)index[r] * (in / 2);
                            tile_scales[r] = ws + (size_t)index[r] * blocks;
                        }
                        q4_tile(tokens, tile_rows, tile_scales, blocks, sums);
                    }
                    for (int t = 0; t < stored; t++) {
                        float *ys = y + (s0 + t) * y_stride;
                        for (int r = 0; r < PROMPT_ROWS && o + r < p1; r++)
                            ys[o + r] = sums[t][r] + (bias ? bias[o + r] : 0.0f);
                    }
                }
            }
        }
    }
}

/* A barrier for the step's team that spins briefly and then sleeps (a futex on Linux, else
 * yields). libgomp's own barrier and its wait policy are the ones torch loaded and configured;
 * they spin for long, and on a machine busier than its cores a spinning thread burns the time
 * slice its partner needs to arrive (2 threads measured 3–4× slower than 1 at load 10 on 2 cores
 * with it, 1.2–1.4× spinning then yielding). `arrived` counts the team in; the last one in flips
 * `phase`, which the others wait on. */
typedef struct {
    int arrived, phase;
} TeamBarrier;

static void team_wait(TeamBarrier *barrier, int team) {
    if (team == 1) return;
    const int phase = __atomic_load_n(&barrier->phase, __ATOMIC_ACQUIRE);
    if (__atomic_add_fetch(&barrier->arrived, 1, __ATOMIC_ACQ_REL) == team) {
        __atomic_store_n(&barrier->arrived, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&barrier->phase, phase + 1, __ATOMIC_RELEASE);
#ifdef __linux__
        syscall(SYS_futex, &barrier->phase, FUTEX_WAKE_PRIVATE, team, NULL, NULL, 0);
#endif
        return;
    }
    for (int spin = 0; __atomic_load_n(&barrier->phase, __ATOMIC_ACQUIRE) == phase; spin++) {
        if (spin < 2000) {
#ifdef HAVE_AVX2
            _mm_pause();
#endif
        } else {
#ifdef __linux__
            /* Sleeps only while phase still reads `phase`: a wake between the check and here is not lost. */
            syscall(SYS_futex, &barrier->phase, FUTEX_WAIT_PRIVATE, phase, NULL, NULL, 0);
#else
            sched_yield();
#endif
        }
    }
}

/* out_proj (in → width) of y, of which this thread made channels [c0, c1), added into this thread's
 * copy of `into` (every thread ends with the same copy). fp32 weights are (in, out): a thread's input
 * rows are contiguous, so each makes a partial sum over its channels, one barrier. Quantized weights
 * are (out, in) rows, where a split by input would have each thread read a slice of every row, which
 * streamed at under half the rate of whole rows (perf, int8 mamba-130m at 2 threads: out_proj and
 * x_proj 23% of the step for 25% of the bytes that in_proj and the head read in 30%). So the
 * quantized y is shared (a barrier), each thread makes whole output rows, and every thread adds them
 * all (a second barrier). `parts`: team × width floats, shared. */
static void project_out(const void *const *layer, const float *y, int8_t *xq, float *xs, int in, int width,
                        int c0, int c1, int t, int team, float *parts, TeamBarrier *barrier, float *into) {
    if (!quantized(layer) || team == 1) {
        quantize_for(layer, y + c0, c1 - c0, xq + c0, xs + c0 / QBLOCK);
        linear_part(layer, y, xq, xs, in, width, c0, c1, 0, width, 0, parts + (size_t)t * width);
        team_wait(barrier, team);
        add_parts(into, parts, team, width, layer[L_B]);
        return;
    }
    quantize_q8(y + c0, c1 - c0, xq + c0, xs + c0 / QBLOCK);
    team_wait(barrier, team);
    int o0, o1;
    share(width, 16, t, team, &o0, &o1);
    if (o1 > o0) linear_part(layer, y, xq, xs, in, width, 0, in, o0, o1, 1, parts + o0);
    team_wait(barrier, team);
    for (int i = 0; i < width; i++) into[i] += parts[i];
}

/* The embedding row of `token` into x (d): int8 rows with a scale each, or fp32 columns (the
 * tails of all three steps start with the embedding and its scales). */
static void embed(const void *const *tail, int64_t token, int d, int vocab, float *x) {
    if (tail[EMBEDDING_S]) {
        const int8_t *row = (const int8_t *)tail[EMBEDDING] + (size_t)token * d;
        const float scale = ((const float *)tail[EMBEDDING_S])[token];
        for (int i = 0; i < d; i++) x[i] = (float)row[i] * scale;
    } else {
        const float *embedding = tail[EMBEDDING];
        for (int i = 0; i < d; i++) x[i] = embedding[(size_t)i * vocab + token];
    }
}

/* Scratch layout of `mamba_step`, in floats: shared arrays, then one private region per thread. */
typedef struct {
    int64_t xz, x, dt, y, xq, xs, dbc_parts, out_parts, shared;            /* offsets; `shared` = size */
    int64_t residual, hidden, dbc, hq, hs, dq, ds, private_size;           /* offsets in a private region */
} StepScratch;

static StepScratch step_scratch(const MambaDims *dims, int threads) {
    const int64_t d = dims->d, d_in = dims->d_in, bc = dims->rank + 2 * dims->n;
    StepScratch s;
    int64_t at = 0;
    s.xz = at; at += 2 * d_in;
    s.x = at; at += d_in;
    s.dt = at; at += d_in;
    s.y = at; at += d_in;
    s.xq = at; at += d_in / 4 + 16;          /* int8 */
    s.xs = at; at += d_in / QBLOCK + 16;
    s.dbc_parts = at; at += threads * bc;
    s.out_parts = at; at += threads * d;
    s.shared = at + 16;
    at = 0;
    s.residual = at; at += d;
    s.hidden = at; at += d;
    s.dbc = at; at += bc;
    s.hq = at; at += d / 4 + 16;             /* int8 */
    s.hs = at; at += d / QBLOCK + 16;
    s.dq = at; at += dims->rank / 4 + 16;    /* int8 */
    s.ds = at; at += dims->rank / QBLOCK + 16;
    s.private_size = (at + 15) / 16 * 16 + 16; /* whole cache lines apart */
    return s;
}

/* The floats of scratch space `mamba_step` needs with `threads` threads. */
int64_t mamba_step_scratch(const MambaDims *dims, int32_t threads) {
    const StepScratch s = step_scratch(dims, threads);
    return s.shared + threads * s.private_size;
}

/* Read `token` with `threads` threads: logits (vocab) out, conv_state (layers, d_in, k) and
 * ssm_state (layers, d_in, n) advanced in place. `weights` holds PER_LAYER pointers per layer, then
 * TAIL more. scratch: mamba_step_scratch(dims, threads) floats. logit_bias: NULL, or vocab floats
 * added to the logits (a grammar mask row; see head_part). The Mamba-2 and RWKV-7 steps take it too. */
void mamba_step(const MambaDims *dims, const void *const *weights, int64_t token,
                float *conv_state, float *ssm_state, float *scratch, float *logits, int32_t threads,
                const float *logit_bias) {
    if (threads < 1) threads = 1;
    const int d = dims->d, d_in = dims->d_in, n = dims->n, k = dims->k, rank = dims->rank, vocab = dims->vocab;
    const int bc = rank + 2 * n;
    const StepScratch s = step_scratch(dims, threads);
    const void *const *tail = weights + (size_t)dims->layers * PER_LAYER;
    float *xz = scratch + s.xz, *x = scratch + s.x, *dt = scratch + s.dt, *y = scratch + s.y;
    int8_t *xq = (int8_t *)(scratch + s.xq);
    float *xs = scratch + s.xs, *dbc_parts = scratch + s.dbc_parts, *out_parts = scratch + s.out_parts;
    TeamBarrier barrier = {0, 0};

#pragma omp parallel num_threads(threads)
    {
        int t = 0, team = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        team = omp_get_num_threads();
#endif
        float *mine = scratch + s.shared + (size_t)t * s.private_size;
        float *residual = mine + s.residual, *hidden = mine + s.hidden, *dbc = mine + s.dbc;
        int8_t *hq = (int8_t *)(mine + s.hq), *dq = (int8_t *)(mine + s.dq);
        float *hs = mine + s.hs, *ds = mine + s.ds;
        int c0, c1;
        share(d_in, QBLOCK, t, team, &c0, &c1); /* this thread's channels */

        embed(tail, token, d, vocab, residual);
        for (int layer = 0; layer < dims->layers; layer++) {
            const void *const *w = weights + (size_t)layer * PER_LAYER;
            float *conv = conv_state + (size_t)layer * d_in * k, *h = ssm_state + (size_t)layer * d_in * n;
            rms_norm(residual, w[NORM], dims->eps, d, hidden);
            if (quantized(w + IN_PROJ)) quantize_q8(hidden, d, hq, hs);
            /* in_proj: this thread's columns of x and of the gate z. */
            if (c1 > c0) {
                linear_part(w + IN_PROJ, hidden, hq, hs, d, 2 * d_in, 0, d, c0, c1, 1, xz + c0);
                linear_part(w + IN_PROJ, hidden, hq, hs, d, 2 * d_in, 0, d, d_in + c0, d_in + c1, 1, xz + d_in + c0);
            }
            /* Slide x into the convolution's window, then take its dot product with the kernel. */
            const float *conv_w = w[CONV_W], *conv_b = w[CONV_B];
            for (int c = c0; c < c1; c++) {
                float *window = conv + (size_t)c * k;
                memmove(window, window + 1, sizeof(float) * (size_t)(k - 1));
                window[k - 1] = xz[c];
                float sum = conv_b ? conv_b[c] : 0.0f;
                for (int j = 0; j < k; j++) sum += window[j] * conv_w[(size_t)c * k + j];
                x[c] = silu(sum);
            }
            /* x_proj over this thread's input rows: a partial Δ, B, C. */
            if (quantized(w + X_PROJ)) quantize_q8(x + c0, c1 - c0, xq + c0, xs + c0 / QBLOCK);
            linear_part(w + X_PROJ, x, xq, xs, d_in, bc, c0, c1, 0, bc, 0, dbc_parts + (size_t)t * bc);
            team_wait(&barrier, team);
            const float *x_bias = w[X_PROJ + L_B];
            for (int j = 0; j < bc; j++) dbc[j] = x_bias ? x_bias[j] : 0.0f;
            for (int part = 0; part < team; part++)
                for (int j = 0; j < bc; j++) dbc[j] += dbc_parts[(size_t)part * bc + j];
            float *B = dbc + rank, *C = B + n;
            if (dims->falcon) {
                rms_norm(dbc, NULL, dims->mixer_eps, rank, dbc);
                rms_norm(B, NULL, dims->mixer_eps, n, B);
                rms_norm(C, NULL, dims->mixer_eps, n, C);
            }
            if (c1 > c0) {
                if (quantized(w + DT_PROJ)) quantize_q8(dbc, rank, dq, ds);
                linear_part(w + DT_PROJ, dbc, dq, ds, rank, d_in, 0, rank, c0, c1, 1, dt + c0);
                ssm_token(c1 - c0, n, x + c0, dt + c0, (const float *)w[A2] + (size_t)c0 * n, B, C,
                          (const float *)w[D_SKIP] + c0, xz + d_in + c0, h + (size_t)c0 * n, dt + c0, y + c0);
            }
            project_out(w + OUT_PROJ, y, xq, xs, d_in, d, c0, c1, t, team, out_parts, &barrier, residual);
        }
        rms_norm(residual, tail[NORM_F], dims->eps, d, hidden);
        head_part(tail + HEAD, hidden, hq, hs, d, vocab, t, team, logits, logit_bias);
    }
}

/* Σ x over n floats with `threads` threads: a read-only pass over memory, for measuring the read
 * bandwidth the decode step is bounded by (the benchmark gives it a buffer larger than the caches). */
double read_sum(const float *x, int64_t size, int32_t threads) {
    double total = 0.0;
#pragma omp parallel for num_threads(threads > 0 ? threads : 1) reduction(+ : total) schedule(static)
    for (int64_t block = 0; block < (size + 4095) / 4096; block++) {
        const int64_t end = (block + 1) * 4096 < size ? (block + 1) * 4096 : size;
        float a = 0.0f, b = 0.0f, c = 0.0f, e = 0.0f;
        int64_t i = block * 4096;
#pragma omp simd reduction(+ : a, b, c, e)
        for (int64_t j = i; j < end - 3; j += 4) {
            a += x[j];
            b += x[j + 1];
            c += x[j + 2];
            e += x[j + 3];
        }
        total += (double)(a + b + c + e);
    }
    return total;
}

/* The machine's peak rate of fp32 multiply-adds, the compute twin of read_sum: `rounds` passes of
 * twelve independent 8-wide chains a = a·m + c per thread (more chains than the FMA units'
 * latency × throughput, so none waits). Returns a checksum, which keeps the loop alive; the
 * caller times the call (cpu_step.fma_gflops). Decides what a prompt's matrix products could
 * take at best: the floor under a prefill ratio (docs/kernels.md). */
double fma_sum(int64_t rounds, int32_t threads) {
    double total = 0.0;
#pragma omp parallel num_threads(threads > 0 ? threads : 1) reduction(+ : total)
    {
        f32x8 a[12];
        const f32x8 m = {0.9999f, 0.9999f, 0.9999f, 0.9999f, 0.9999f, 0.9999f, 0.9999f, 0.9999f};
        const f32x8 c = {1e-4f, 1e-4f, 1e-4f, 1e-4f, 1e-4f, 1e-4f, 1e-4f, 1e-4f};
        for (int i = 0; i < 12; i++) a[i] = c * (float)i;
        for (int64_t r = 0; r < rounds; r++) {
#pragma GCC unroll 12
            for (int i = 0; i < 12; i++) a[i] = a[i] * m + c;
        }
        for (int i = 0; i < 12; i++) total += (double)a[i][0];
    }
    return total;
}

/* ---- Mamba-2 -------------------------------------------------------------------------------
 * One Mamba-2 decode step, fused; its plain twin is `Mamba2LM.step` (model/mamba2.py). Per layer:
 *   z, xBC, dt = in_proj(norm(residual));  xBC = SiLU(conv(xBC));  x, B, C = xBC split
 *   Δ = clamp(softplus(dt + dt_bias));  per head: H ← exp(Δ A) H + Δ x Bᵀ;  y = H C + D x
 *   out = out_proj(RMSNorm_per_group(y · SiLU(z)) · norm_weight)
 * The same frame as Mamba's step (embedding, pre-norm residual blocks, final norm, head) and the
 * same linear layers (fp32, int8, 4-bit). Threads split in_proj's columns and the convolution's
 * channels evenly, then the heads; out_proj by its input rows (the heads' channels). */
typedef struct {
    int32_t d, d_in, n, k, heads, head_dim, groups, vocab, layers;
    float eps, dt_min, dt_max;
} Mamba2Dims;

enum {
    M2_NORM, M2_IN_PROJ, M2_CONV_W = M2_IN_PROJ + LINEAR, M2_CONV_B, M2_DT_BIAS, M2_A_LOG, M2_D,
    M2_GATE_NORM, M2_OUT_PROJ, M2_PER_LAYER = M2_OUT_PROJ + LINEAR
};

typedef struct {
    int64_t proj, xbc, y, xq, xs, square_parts, out_parts, shared;
    int64_t residual, hidden, hq, hs, private_size;
} Step2Scratch;

static Step2Scratch step2_scratch(const Mamba2Dims *dims, int threads) {
    const int64_t d = dims->d, d_in = dims->d_in, conv_dim = d_in + 2 * (int64_t)dims->groups * dims->n;
    Step2Scratch s;
    int64_t at = 0;
    s.proj = at; at += d_in + conv_dim + dims->heads;
    s.xbc = at; at += conv_dim;
    s.y = at; at += d_in;
    s.xq = at; at += d_in / 4 + 16;
    s.xs = at; at += d_in / QBLOCK + 16;
    s.square_parts = at; at += (int64_t)threads * dims->groups;
    s.out_parts = at; at += (int64_t)threads * d;
    s.shared = at + 16;
    at = 0;
    s.residual = at; at += d;
    s.hidden = at; at += d;
    s.hq = at; at += d / 4 + 16;
    s.hs = at; at += d / QBLOCK + 16;
    s.private_size = (at + 15) / 16 * 16 + 16;
    return s;
}

int64_t mamba2_step_scratch(const Mamba2Dims *dims, int32_t threads) {
    const Step2Scratch s = step2_scratch(dims, threads);
    return s.shared + threads * s.private_size;
}

static int gcd(int a, int b) { return b ? gcd(b, a % b) : a; }

/* Read `token`: logits (vocab) out, conv_state (layers, conv_dim, k) and ssm_state
 * (layers, heads, head_dim, n) advanced in place. `weights` holds M2_PER_LAYER pointers per
 * layer, then TAIL more (Mamba's tail). */
/* The step's arrays that every thread reads, for one token through one Mamba-2 mixer. */
typedef struct {
    float *proj, *xbc, *y, *xs, *square_parts, *out_parts;
    int8_t *xq;
} Mixer2Shared;

/* One token through one Mamba-2 mixer, inside a parallel region (thread t of team): norm(residual)
 * (w[M2_NORM]) → in_proj → conv → the heads' state update → gated norm → out_proj, added into this
 * thread's `into` (the residual itself in mamba2_step; a buffer Granite scales first). conv
 * (conv_dim, k) and H (heads, head_dim, n) advance in place; hidden, hq, hs: private scratch. */
static void mamba2_mixer(const Mamba2Dims *dims, const void *const *w, const float *residual, float *hidden,
                         int8_t *hq, float *hs, float *conv, float *H, Mixer2Shared sh, int t, int team,
                         TeamBarrier *barrier, float *into) {
    const int d = dims->d, d_in = dims->d_in, n = dims->n, k = dims->k;
    const int heads = dims->heads, p = dims->head_dim, groups = dims->groups;
    const int gn = groups * n, conv_dim = d_in + 2 * gn, proj_out = d_in + conv_dim + heads;
    const int per_group = heads / groups, group_size = d_in / groups;
    /* Heads per share so that channel boundaries fall on whole blocks of QBLOCK. */
    const int head_align = QBLOCK / gcd(p, QBLOCK);
    int o0, o1, k0, k1, h0, h1;
    share(proj_out, 16, t, team, &o0, &o1);
    share(conv_dim, 16, t, team, &k0, &k1);
    share(heads, head_align, t, team, &h0, &h1);
    const int c0 = h0 * p, c1 = h1 * p; /* this thread's channels of y */
    float *proj = sh.proj, *xbc = sh.xbc, *y = sh.y;

    rms_norm(residual, w[M2_NORM], dims->eps, d, hidden);
    if (quantized(w + M2_IN_PROJ)) quantize_q8(hidden, d, hq, hs);
    if (o1 > o0) linear_part(w + M2_IN_PROJ, hidden, hq, hs, d, proj_out, 0, d, o0, o1, 1, proj + o0);
    team_wait(barrier, team);
    const float *z = proj, *xbc_in = proj + d_in, *dt_raw = proj + d_in + conv_dim;
    const float *conv_w = w[M2_CONV_W], *conv_b = w[M2_CONV_B];
    for (int c = k0; c < k1; c++) {
        float *window = conv + (size_t)c * k;
        memmove(window, window + 1, sizeof(float) * (size_t)(k - 1));
        window[k - 1] = xbc_in[c];
        float sum = conv_b ? conv_b[c] : 0.0f;
        for (int j = 0; j < k; j++) sum += window[j] * conv_w[(size_t)c * k + j];
        xbc[c] = silu(sum);
    }
    team_wait(barrier, team);
    const float *x = xbc, *B = xbc + d_in, *C = xbc + d_in + gn;
    const float *dt_bias = w[M2_DT_BIAS], *A_log = w[M2_A_LOG], *D = w[M2_D];
    float *squares = sh.square_parts + (size_t)t * groups;
    for (int g = 0; g < groups; g++) squares[g] = 0.0f;
    for (int h = h0; h < h1; h++) {
        float delta = softplus(dt_raw[h] + dt_bias[h]);
        delta = delta < dims->dt_min ? dims->dt_min : delta;
        delta = delta > dims->dt_max ? dims->dt_max : delta;
        const float decay = expf(-expf(A_log[h]) * delta);
        const int g = h / per_group;
        const float *Bg = B + (size_t)g * n, *Cg = C + (size_t)g * n;
        float square = 0.0f;
        for (int i = 0; i < p; i++) {
            const int c = h * p + i;
            const float yc = ssd_row(n, H + (size_t)c * n, decay, delta * x[c], Bg, Cg);
            const float gated = (yc + D[h] * x[c]) * silu(z[c]);
            y[c] = gated;
            square += gated * gated;
        }
        squares[g] += square;
    }
    team_wait(barrier, team);
    /* The gated RMS norm per group, then out_proj over this thread's channels. */
    const float *gate_w = w[M2_GATE_NORM];
    for (int c = c0; c < c1; c++) {
        const int g = c / group_size;
        float total = 0.0f;
        for (int part = 0; part < team; part++) total += sh.square_parts[(size_t)part * groups + g];
        y[c] = y[c] / sqrtf(total / (float)group_size + dims->eps) * gate_w[c];
    }
    project_out(w + M2_OUT_PROJ, y, sh.xq, sh.xs, d_in, d, c0, c1, t, team, sh.out_parts, barrier, into);
}

void mamba2_step(const Mamba2Dims *dims, const void *const *weights, int64_t token,
                 float *conv_state, float *ssm_state, float *scratch, float *logits, int32_t threads,
                const float *logit_bias) {
    if (threads < 1) threads = 1;
    const int d = dims->d, d_in = dims->d_in, n = dims->n, k = dims->k, vocab = dims->vocab;
    const int heads = dims->heads, p = dims->head_dim, conv_dim = d_in + 2 * dims->groups * n;
    const Step2Scratch s = step2_scratch(dims, threads);
    const void *const *tail = weights + (size_t)dims->layers * M2_PER_LAYER;
    const Mixer2Shared shared = {scratch + s.proj, scratch + s.xbc, scratch + s.y, scratch + s.xs,
                                 scratch + s.square_parts, scratch + s.out_parts, (int8_t *)(scratch + s.xq)};
    TeamBarrier barrier = {0, 0};

#pragma omp parallel num_threads(threads)
    {
        int t = 0, team = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        team = omp_get_num_threads();
#endif
        float *mine = scratch + s.shared + (size_t)t * s.private_size;
        float *residual = mine + s.residual, *hidden = mine + s.hidden, *hs = mine + s.hs;
        int8_t *hq = (int8_t *)(mine + s.hq);
        embed(tail, token, d, vocab, residual);
        for (int layer = 0; layer < dims->layers; layer++)
            mamba2_mixer(dims, weights + (size_t)layer * M2_PER_LAYER, residual, hidden, hq, hs,
                         conv_state + (size_t)layer * conv_dim * k, ssm_state + (size_t)layer * heads * p * n,
                         shared, t, team, &barrier, residual);
        rms_norm(residual, tail[NORM_F], dims->eps, d, hidden);
        head_part(tail + HEAD, hidden, hq, hs, d, vocab, t, team, logits, logit_bias);
    }
}

/* ---- Granite-4.0-H ---------------------------------------------------------------------------
 * One decode step of a Granite-4.0-H hybrid, fused; its plain twin is `GraniteHybridLM.step`
 * (model/granite.py). residual = embedding(token) · embedding_multiplier, then per layer
 *   mixed = mamba2_mixer(…) or attention(norm(residual));  residual += r · mixed
 *   residual += r · down(SiLU(gate) · up), gate and up from one projection of post_norm(residual)
 * (r = residual_multiplier), then norm_f and the head, ÷ logits_scaling. Attention: q, k, v of the
 * normed residual, no positions; the token's key and value go to ring slot seen mod W, and query
 * head h reads kv head h / (heads / kv heads) over every held slot, softmax(q·k · multiplier).
 * A layer is attention when its q_proj is given. Threads: projections by output rows, heads of
 * attention by thread, the MLP's channels by thread, out projections as project_out does. */
typedef struct {
    Mamba2Dims mamba; /* the Mamba-2 mixers' shape; its `layers` counts every layer */
    int32_t att_heads, kv_heads, att_dim, window, mlp;
    float embedding_multiplier, residual_multiplier, logits_scaling, attention_multiplier;
} GraniteDims;

enum {
    GR_Q = M2_PER_LAYER, GR_K = GR_Q + LINEAR, GR_V = GR_K + LINEAR, GR_O = GR_V + LINEAR,
    GR_POST_NORM = GR_O + LINEAR, GR_MLP_IN, GR_MLP_OUT = GR_MLP_IN + LINEAR, GR_PER_LAYER = GR_MLP_OUT + LINEAR
};

typedef struct {
    int64_t q, k, v, gate_up, scores, shared;
    int64_t residual, hidden, hq, hs, mixed, private_size;
    Step2Scratch m2;
} GraniteScratch;

static GraniteScratch granite_scratch(const GraniteDims *dims, int threads) {
    const Mamba2Dims *m = &dims->mamba;
    const int64_t d = m->d, att = (int64_t)dims->att_heads * dims->att_dim, kv = (int64_t)dims->kv_heads * dims->att_dim;
    int64_t widest = m->d_in > att ? m->d_in : att;
    widest = widest > dims->mlp ? widest : dims->mlp;
    Mamba2Dims wide = *m; /* the mixers' shared arrays, y and its int8 blocks as wide as any out projection's input */
    wide.d_in = (int32_t)widest;
    GraniteScratch s;
    s.m2 = step2_scratch(&wide, threads);
    int64_t at = s.m2.shared;
    s.q = at; at += att;
    s.k = at; at += kv;
    s.v = at; at += kv;
    s.gate_up = at; at += 2 * (int64_t)dims->mlp;
    s.scores = at; at += (int64_t)threads * dims->window;
    s.shared = at + 16;
    at = 0;
    s.residual = at; at += d;
    s.hidden = at; at += d;
    s.hq = at; at += d / 4 + 16;
    s.hs = at; at += d / QBLOCK + 16;
    s.mixed = at; at += d;
    s.private_size = (at + 15) / 16 * 16 + 16;
    return s;
}

int64_t granite_step_scratch(const GraniteDims *dims, int32_t threads) {
    const GraniteScratch s = granite_scratch(dims, threads);
    return s.shared + threads * s.private_size;
}

/* One attention layer's token (see above), added into this thread's `into`. */
static void granite_attention(const GraniteDims *g, const void *const *w, const float *residual, float *hidden,
                              int8_t *hq, float *hs, float *keys, float *values, int64_t seen, float *q, float *k,
                              float *v, float *scores, Mixer2Shared sh, int t, int team, TeamBarrier *barrier,
                              float *into) {
    const int d = g->mamba.d, heads = g->att_heads, kv = g->kv_heads, hd = g->att_dim, W = g->window;
    rms_norm(residual, w[M2_NORM], g->mamba.eps, d, hidden);
    if (quantized(w + GR_Q) || quantized(w + GR_K) || quantized(w + GR_V)) quantize_q8(hidden, d, hq, hs);
    int o0, o1;
    share(heads * hd, 16, t, team, &o0, &o1);
    if (o1 > o0) linear_part(w + GR_Q, hidden, hq, hs, d, heads * hd, 0, d, o0, o1, 1, q + o0);
    share(kv * hd, 16, t, team, &o0, &o1);
    if (o1 > o0) {
        linear_part(w + GR_K, hidden, hq, hs, d, kv * hd, 0, d, o0, o1, 1, k + o0);
        linear_part(w + GR_V, hidden, hq, hs, d, kv * hd, 0, d, o0, o1, 1, v + o0);
    }
    /* This thread's rows of the token's key and value into its slot (kv heads, W, head_dim). */
    const int64_t slot = seen % W;
    for (int c = o0; c < o1; c++) {
        const size_t at = ((size_t)(c / hd) * W + (size_t)slot) * hd + (size_t)(c % hd);
        keys[at] = k[c];
        values[at] = v[c];
    }
    team_wait(barrier, team);
    const int64_t held = seen + 1 < W ? seen + 1 : W;
    const int group = heads / kv, head_align = QBLOCK / gcd(hd, QBLOCK);
    int h0, h1;
    share(heads, head_align, t, team, &h0, &h1);
    float *y = sh.y;
    for (int h = h0; h < h1; h++) {
        const float *qh = q + (size_t)h * hd;
        const float *kh = keys + (size_t)(h / group) * W * hd, *vh = values + (size_t)(h / group) * W * hd;
        float top = -INFINITY;
        for (int64_t j = 0; j < held; j++) {
            float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
            for (int i = 0; i < hd; i++) dot += qh[i] * kh[(size_t)j * hd + i];
            scores[j] = dot * g->attention_multiplier;
            top = scores[j] > top ? scores[j] : top;
        }
        float total = 0.0f;
        for (int64_t j = 0; j < held; j++) {
            scores[j] = expf(scores[j] - top);
            total += scores[j];
        }
        float *yh = y + (size_t)h * hd;
        for (int i = 0; i < hd; i++) yh[i] = 0.0f;
        for (int64_t j = 0; j < held; j++) {
            const float weight = scores[j] / total;
#pragma omp simd
            for (int i = 0; i < hd; i++) yh[i] += weight * vh[(size_t)j * hd + i];
        }
    }
    project_out(w + GR_O, y, sh.xq, sh.xs, heads * hd, d, h0 * hd, h1 * hd, t, team, sh.out_parts, barrier, into);
}

/* The layer's MLP on post_norm(residual), added into this thread's `into`: input_linear's first
 * `mlp` rows are the gate, the next `mlp` the up projection; this thread makes both for its
 * channels, multiplies them and projects them down with project_out. */
static void granite_mlp(const GraniteDims *g, const void *const *w, const float *residual, float *hidden,
                        int8_t *hq, float *hs, float *gate_up, Mixer2Shared sh, int t, int team,
                        TeamBarrier *barrier, float *into) {
    const int d = g->mamba.d, m = g->mlp;
    rms_norm(residual, w[GR_POST_NORM], g->mamba.eps, d, hidden);
    if (quantized(w + GR_MLP_IN)) quantize_q8(hidden, d, hq, hs);
    int c0, c1;
    share(m, QBLOCK, t, team, &c0, &c1);
    float *act = sh.y;
    if (c1 > c0) {
        linear_part(w + GR_MLP_IN, hidden, hq, hs, d, 2 * m, 0, d, c0, c1, 1, gate_up + c0);
        linear_part(w + GR_MLP_IN, hidden, hq, hs, d, 2 * m, 0, d, m + c0, m + c1, 1, gate_up + m + c0);
    }
    for (int c = c0; c < c1; c++) act[c] = silu(gate_up[c]) * gate_up[m + c];
    project_out(w + GR_MLP_OUT, act, sh.xq, sh.xs, m, d, c0, c1, t, team, sh.out_parts, barrier, into);
}

/* Read `token`: logits (vocab) out; conv_state (mamba layers, conv_dim, k), ssm_state (mamba
 * layers, heads, head_dim, n), keys and values (attention layers, kv heads, W, head_dim) advanced
 * in place, `seen` tokens read before this one. `weights`: GR_PER_LAYER pointers per layer, then
 * Mamba's TAIL. */
void granite_step(const GraniteDims *dims, const void *const *weights, int64_t token, float *conv_state,
                  float *ssm_state, float *keys, float *values, int64_t seen, float *scratch, float *logits,
                  int32_t threads, const float *logit_bias) {
    if (threads < 1) threads = 1;
    const Mamba2Dims *m = &dims->mamba;
    const int d = m->d, vocab = m->vocab, conv_dim = m->d_in + 2 * m->groups * m->n;
    const size_t conv_size = (size_t)conv_dim * m->k, ssm_size = (size_t)m->heads * m->head_dim * m->n;
    const size_t ring_size = (size_t)dims->kv_heads * dims->window * dims->att_dim;
    const float r = dims->residual_multiplier;
    const GraniteScratch s = granite_scratch(dims, threads);
    const void *const *tail = weights + (size_t)m->layers * GR_PER_LAYER;
    const Mixer2Shared shared = {scratch + s.m2.proj, scratch + s.m2.xbc, scratch + s.m2.y, scratch + s.m2.xs,
                                 scratch + s.m2.square_parts, scratch + s.m2.out_parts, (int8_t *)(scratch + s.m2.xq)};
    TeamBarrier barrier = {0, 0};

#pragma omp parallel num_threads(threads)
    {
        int t = 0, team = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        team = omp_get_num_threads();
#endif
        float *mine = scratch + s.shared + (size_t)t * s.private_size;
        float *residual = mine + s.residual, *hidden = mine + s.hidden, *hs = mine + s.hs, *mixed = mine + s.mixed;
        int8_t *hq = (int8_t *)(mine + s.hq);
        embed(tail, token, d, vocab, residual);
        for (int i = 0; i < d; i++) residual[i] *= dims->embedding_multiplier;
        int mamba_index = 0, attention_index = 0;
        for (int layer = 0; layer < m->layers; layer++) {
            const void *const *w = weights + (size_t)layer * GR_PER_LAYER;
            memset(mixed, 0, sizeof(float) * (size_t)d);
            if (w[GR_Q + L_W]) {
                granite_attention(dims, w, residual, hidden, hq, hs, keys + attention_index * ring_size,
                                  values + attention_index * ring_size, seen, scratch + s.q, scratch + s.k,
                                  scratch + s.v, scratch + s.scores + (size_t)t * dims->window, shared, t, team,
                                  &barrier, mixed);
                attention_index++;
            } else {
                mamba2_mixer(m, w, residual, hidden, hq, hs, conv_state + mamba_index * conv_size,
                             ssm_state + mamba_index * ssm_size, shared, t, team, &barrier, mixed);
                mamba_index++;
            }
            for (int i = 0; i < d; i++) residual[i] += r * mixed[i];
            memset(mixed, 0, sizeof(float) * (size_t)d);
            /* project_out's partial sums are still being read: the MLP's may not be written yet. */
            team_wait(&barrier, team);
            granite_mlp(dims, w, residual, hidden, hq, hs, scratch + s.gate_up, shared, t, team, &barrier, mixed);
            for (int i = 0; i < d; i++) residual[i] += r * mixed[i];
            /* The next layer's first writes to the shared arrays wait for every thread to be done here. */
            team_wait(&barrier, team);
        }
        rms_norm(residual, tail[NORM_F], m->eps, d, hidden);
        for (int i = 0; i < d; i++) hidden[i] /= dims->logits_scaling;
        head_part(tail + HEAD, hidden, hq, hs, d, vocab, t, team, logits, logit_bias);
    }
}

/* ---- RWKV-7 --------------------------------------------------------------------------------
 * One RWKV-7 decode step, fused; its plain twin is `RWKV7LM.step` (model/rwkv7.py, `wkv_step`
 * for the recurrence). Per layer, all LayerNorms with an optional bias:
 *   [layer 0: residual = pre_norm(residual)]
 *   h = attn_norm(residual);  xr … xg = h + (shift0 - h) · x_r … x_g;  shift0 = h
 *   r, k, v = r/k/v_proj;  w = exp(-e^{-1/2} σ(w_lora));  a = σ(a_lora);  g = g_lora (σ inside)
 *   v = lerp(v, v_first, σ(v_lora)) (layer 0: v_first = v);  kk = normalize(k · k_k) per head
 *   k = k (1 + (a - 1) k_a);  per head S ← diag(w) S + (kk a)((-kk) S) + k vᵀ;  o = r S
 *   residual += o_proj((GroupNorm(o) + Σ(r k r_k) v) · g)
 *   h2 = ffn_norm(residual);  xk = h2 + (shift1 - h2) · x_k;  shift1 = h2
 *   residual += value(relu(key(xk))²)
 * then norm_f and the LM head. Threads: the first projections (r, k, v and the LoRAs' first
 * layers) are split by output columns; then each thread owns whole heads (channels in whole
 * blocks of 32) and does, for them, the LoRAs' second layers, the recurrence, the norm, the gate
 * and o_proj's rows as a partial sum; the channel mix splits key's columns, and value by the same
 * rows. Three barriers a layer; every thread keeps its own identical copy of the residual. */
typedef struct {
    int32_t d, heads, head_dim, ffn, rank_w, rank_v, rank_a, rank_g, vocab, layers;
    float eps, group_eps;
} RWKV7Dims;

/* Per-layer pointers; a NULL norm weight means no norm (pre_norm after layer 0), a NULL
 * v_lora weight means none (layer 0). */
enum {
    R7_PRE_NORM_W, R7_PRE_NORM_B, R7_ATTN_NORM_W, R7_ATTN_NORM_B,
    R7_X_R, R7_X_W, R7_X_K, R7_X_V, R7_X_A, R7_X_G,
    R7_R_PROJ, R7_K_PROJ = R7_R_PROJ + LINEAR, R7_V_PROJ = R7_K_PROJ + LINEAR,
    R7_W_LORA0 = R7_V_PROJ + LINEAR, R7_W_LORA2 = R7_W_LORA0 + LINEAR,
    R7_V_LORA0 = R7_W_LORA2 + LINEAR, R7_V_LORA2 = R7_V_LORA0 + LINEAR,
    R7_A_LORA0 = R7_V_LORA2 + LINEAR, R7_A_LORA2 = R7_A_LORA0 + LINEAR,
    R7_G_LORA0 = R7_A_LORA2 + LINEAR, R7_G_LORA2 = R7_G_LORA0 + LINEAR,
    R7_K_K = R7_G_LORA2 + LINEAR, R7_K_A, R7_R_K, R7_G_NORM_W, R7_G_NORM_B,
    R7_O_PROJ, R7_FFN_NORM_W = R7_O_PROJ + LINEAR, R7_FFN_NORM_B, R7_FFN_X_K,
    R7_KEY, R7_VALUE = R7_KEY + LINEAR, R7_PER_LAYER = R7_VALUE + LINEAR
};
/* After the layers: the embedding and its int8 scales, norm_f's weight and bias, the head. */
enum { R7_EMBEDDING, R7_EMBEDDING_S, R7_NORM_F_W, R7_NORM_F_B, R7_HEAD, R7_TAIL = R7_HEAD + LINEAR };

/* out = LayerNorm(x) · weight (+ bias); x and out may be the same array. */
static void layer_norm(const float *x, const float *weight, const float *bias, float eps, int size, float *out) {
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < size; i++) sum += x[i];
    const float mean = sum / (float)size;
    float squares = 0.0f;
#pragma omp simd reduction(+ : squares)
    for (int i = 0; i < size; i++) squares += (x[i] - mean) * (x[i] - mean);
    const float scale = 1.0f / sqrtf(squares / (float)size + eps);
    for (int i = 0; i < size; i++) out[i] = (x[i] - mean) * scale * weight[i] + (bias ? bias[i] : 0.0f);
}

static inline float sigmoid(float x) { return 1.0f / (1.0f + exp_fast(-x)); }

typedef struct {
    int64_t rkv, lora, out_parts_a, out_parts_f, v_first, key, yq, ys, shared; /* shared offsets */
    int64_t residual, hidden, mixed, hq, hs, act, aq, as, y, private_size;     /* private */
} R7Scratch;

static R7Scratch r7_scratch(const RWKV7Dims *dims, int threads) {
    const int64_t d = dims->d, ranks = dims->rank_w + dims->rank_v + dims->rank_a + dims->rank_g;
    R7Scratch s;
    int64_t at = 0;
    s.rkv = at; at += 3 * d;
    s.lora = at; at += ranks;
    s.out_parts_a = at; at += (int64_t)threads * d;
    s.out_parts_f = at; at += (int64_t)threads * d;
    s.v_first = at; at += d;
    s.key = at; at += dims->ffn;
    const int64_t widest = d > dims->ffn ? d : dims->ffn;
    s.yq = at; at += widest / 4 + 16;            /* o_proj's and value's inputs, int8 (project_out) */
    s.ys = at; at += widest / QBLOCK + 16;
    s.shared = at + 16;
    at = 0;
    s.residual = at; at += d;
    s.hidden = at; at += d;
    s.mixed = at; at += 6 * d;                   /* xr, xw, xk, xv, xa, xg */
    s.hq = at; at += 6 * d / 4 + 16;             /* their int8 blocks */
    s.hs = at; at += 6 * d / QBLOCK + 16;
    s.act = at; at += ranks;                     /* the LoRAs' hidden activations */
    s.aq = at; at += ranks / 4 + 16;
    s.as = at; at += ranks / QBLOCK + 16;
    s.y = at; at += 4 * d;                       /* decay, v mix, rate, gate for this thread's channels */
    s.private_size = (at + 15) / 16 * 16 + 16;
    return s;
}

int64_t rwkv7_step_scratch(const RWKV7Dims *dims, int32_t threads) {
    const R7Scratch s = r7_scratch(dims, threads);
    return s.shared + threads * s.private_size;
}

/* A whole linear layer's outputs [o0, o1) from the whole input (quantized first when it is). */
static void linear_columns(const void *const *layer, const float *x, const int8_t *xq, const float *xs,
                           int in, int out, int t, int team, float *y) {
    int o0, o1;
    share(out, 16, t, team, &o0, &o1);
    if (o1 > o0) linear_part(layer, x, xq, xs, in, out, 0, in, o0, o1, 1, y + o0);
}

/* Read `token`: logits (vocab) out; shift_state (layers, 2, d) and wkv_state (layers, heads, K, K)
 * advanced in place. `weights` holds R7_PER_LAYER pointers per layer, then R7_TAIL more. */
void rwkv7_step(const RWKV7Dims *dims, const void *const *weights, int64_t token,
                float *shift_state, float *wkv_state, float *scratch, float *logits, int32_t threads,
                const float *logit_bias) {
    if (threads < 1) threads = 1;
    const int d = dims->d, heads = dims->heads, K = dims->head_dim, ffn = dims->ffn, vocab = dims->vocab;
    const int rw = dims->rank_w, rv = dims->rank_v, ra = dims->rank_a, rg = dims->rank_g;
    const int head_align = QBLOCK / gcd(K, QBLOCK);
    const R7Scratch s = r7_scratch(dims, threads);
    const void *const *tail = weights + (size_t)dims->layers * R7_PER_LAYER;
    float *rkv = scratch + s.rkv, *lora = scratch + s.lora, *v_first = scratch + s.v_first;
    float *parts_a = scratch + s.out_parts_a, *parts_f = scratch + s.out_parts_f, *key = scratch + s.key;
    int8_t *yq = (int8_t *)(scratch + s.yq);
    float *ys = scratch + s.ys;
    TeamBarrier barrier = {0, 0};

#pragma omp parallel num_threads(threads)
    {
        int t = 0, team = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        team = omp_get_num_threads();
#endif
        float *mine = scratch + s.shared + (size_t)t * s.private_size;
        float *residual = mine + s.residual, *hidden = mine + s.hidden, *mixed = mine + s.mixed;
        int8_t *hq = (int8_t *)(mine + s.hq), *aq = (int8_t *)(mine + s.aq);
        float *hs = mine + s.hs, *act = mine + s.act, *as = mine + s.as, *y = mine + s.y;
        int h0, h1, f0, f1;
        share(heads, head_align, t, team, &h0, &h1);
        share(ffn, QBLOCK, t, team, &f0, &f1);
        const int c0 = h0 * K, c1 = h1 * K; /* this thread's channels */

        embed(tail, token, d, vocab, residual); /* R7_EMBEDDING(_S) are EMBEDDING(_S)'s slots */
        for (int layer = 0; layer < dims->layers; layer++) {
            const void *const *w = weights + (size_t)layer * R7_PER_LAYER;
            float *shift = shift_state + (size_t)layer * 2 * d;
            float *S_all = wkv_state + (size_t)layer * heads * K * K;
            if (w[R7_PRE_NORM_W]) layer_norm(residual, w[R7_PRE_NORM_W], w[R7_PRE_NORM_B], dims->eps, d, residual);
            layer_norm(residual, w[R7_ATTN_NORM_W], w[R7_ATTN_NORM_B], dims->eps, d, hidden);
            /* The six token-shift mixes, read before anyone writes shift (after the next barrier). */
            for (int m = 0; m < 6; m++) {
                const float *coefficient = w[R7_X_R + m];
                float *out = mixed + (size_t)m * d;
#pragma omp simd
                for (int i = 0; i < d; i++) out[i] = hidden[i] + (shift[i] - hidden[i]) * coefficient[i];
            }
            float *xr = mixed, *xw = mixed + d, *xk = mixed + 2 * d, *xv = mixed + 3 * d, *xa = mixed + 4 * d,
                  *xg = mixed + 5 * d;
            int8_t *qr = hq, *qw = hq + d, *qk = hq + 2 * d, *qv = hq + 3 * d, *qa = hq + 4 * d, *qg = hq + 5 * d;
            const int nb = d / QBLOCK;
            float *sr = hs, *sw = hs + nb, *sk = hs + 2 * nb, *sv = hs + 3 * nb, *sa = hs + 4 * nb, *sg = hs + 5 * nb;
            const int has_v_lora = w[R7_V_LORA0 + L_W] != NULL;
            /* Stage 1: r, k, v and the LoRAs' first layers, split by output columns. */
            quantize_for(w + R7_R_PROJ, xr, d, qr, sr);
            quantize_for(w + R7_K_PROJ, xk, d, qk, sk);
            if (quantized(w + R7_V_PROJ) || (has_v_lora && quantized(w + R7_V_LORA0))) quantize_q8(xv, d, qv, sv);
            quantize_for(w + R7_W_LORA0, xw, d, qw, sw);
            quantize_for(w + R7_A_LORA0, xa, d, qa, sa);
            quantize_for(w + R7_G_LORA0, xg, d, qg, sg);
            float *r = rkv, *k = rkv + d, *v = rkv + 2 * d;
            float *lw = lora, *lv = lora + rw, *la = lv + rv, *lg = la + ra;
            linear_columns(w + R7_R_PROJ, xr, qr, sr, d, d, t, team, r);
            linear_columns(w + R7_K_PROJ, xk, qk, sk, d, d, t, team, k);
            linear_columns(w + R7_V_PROJ, xv, qv, sv, d, d, t, team, v);
            linear_columns(w + R7_W_LORA0, xw, qw, sw, d, rw, t, team, lw);
            if (has_v_lora) linear_columns(w + R7_V_LORA0, xv, qv, sv, d, rv, t, team, lv);
            linear_columns(w + R7_A_LORA0, xa, qa, sa, d, ra, t, team, la);
            linear_columns(w + R7_G_LORA0, xg, qg, sg, d, rg, t, team, lg);
            team_wait(&barrier, team);
            for (int i = c0; i < c1; i++) shift[i] = hidden[i]; /* every read of shift0 is done */

            /* Stage 2, this thread's heads: the LoRAs' second layers for its channels ... */
            float *aw = act, *av = act + rw, *aa = av + rv, *ag = aa + ra;
            for (int i = 0; i < rw; i++) aw[i] = tanhf(lw[i]);
            if (has_v_lora) for (int i = 0; i < rv; i++) av[i] = lv[i];
            for (int i = 0; i < ra; i++) aa[i] = la[i];
            for (int i = 0; i < rg; i++) ag[i] = sigmoid(lg[i]);
            int8_t *qaw = aq, *qav = aq + rw, *qaa = qav + rv, *qag = qaa + ra;
            float *saw = as, *sav = as + rw / QBLOCK + 1, *saa = sav + rv / QBLOCK + 1, *sag = saa + ra / QBLOCK + 1;
            quantize_for(w + R7_W_LORA2, aw, rw, qaw, saw);
            if (has_v_lora) quantize_for(w + R7_V_LORA2, av, rv, qav, sav);
            quantize_for(w + R7_A_LORA2, aa, ra, qaa, saa);
            quantize_for(w + R7_G_LORA2, ag, rg, qag, sag);
            /* Outputs [c0, c1) of each, into this thread's y-sized scratch: decay, v mix, a, gate. */
            float *decay = y, *vmix = y + (c1 - c0), *rate = y + 2 * (c1 - c0), *gate = y + 3 * (c1 - c0);
            if (c1 > c0) {
                linear_part(w + R7_W_LORA2, aw, qaw, saw, rw, d, 0, rw, c0, c1, 1, decay);
                if (has_v_lora) linear_part(w + R7_V_LORA2, av, qav, sav, rv, d, 0, rv, c0, c1, 1, vmix);
                linear_part(w + R7_A_LORA2, aa, qaa, saa, ra, d, 0, ra, c0, c1, 1, rate);
                linear_part(w + R7_G_LORA2, ag, qag, sag, rg, d, 0, rg, c0, c1, 1, gate);
            }
            /* ... then, per head, the recurrence, the norm, the bonus and the gate: o into `out`. */
            const float *k_k = w[R7_K_K], *k_a = w[R7_K_A], *r_k = w[R7_R_K];
            const float *gn_w = w[R7_G_NORM_W], *gn_b = w[R7_G_NORM_B];
            float *out = hidden; /* this thread's channels of o_proj's input, at their own offsets */
            for (int h = h0; h < h1; h++) {
                const int base = h * K, local = base - c0;
                float kk[K], ww[K], bb[K], kh[K], vh[K], read[K], o[K];
                float norm = 0.0f;
                for (int i = 0; i < K; i++) {
                    const int c = base + i;
                    ww[i] = expf(-0.6065306597126334f * sigmoid(decay[local + i]));
                    float vc = v[c];
                    if (has_v_lora) {
                        const float mix = sigmoid(vmix[local + i]);
                        vc = vc + mix * (v_first[c] - vc);
                    } else {
                        v_first[c] = vc;
                    }
                    vh[i] = vc;
                    kk[i] = k[c] * k_k[c];
                    norm += kk[i] * kk[i];
                }
                norm = sqrtf(norm);
                norm = norm > 1e-12f ? norm : 1e-12f;
                float bonus = 0.0f;
                for (int i = 0; i < K; i++) {
                    const int c = base + i;
                    const float ai = sigmoid(rate[local + i]);
                    kk[i] /= norm;
                    bb[i] = kk[i] * ai;
                    kh[i] = k[c] + k[c] * (ai - 1.0f) * k_a[c];
                    bonus += r[c] * kh[i] * r_k[c];
                    read[i] = 0.0f;
                    o[i] = 0.0f;
                }
                float *S = S_all + (size_t)h * K * K;
                for (int i = 0; i < K; i++) { /* read = (-kk) S */
                    const float ai = -kk[i];
                    const float *row = S + (size_t)i * K;
#pragma omp simd
                    for (int j = 0; j < K; j++) read[j] += ai * row[j];
                }
                for (int i = 0; i < K; i++) {
                    float *row = S + (size_t)i * K;
                    const float wi = ww[i], bi = bb[i], ki = kh[i], ri = r[base + i];
#pragma omp simd
                    for (int j = 0; j < K; j++) {
                        const float value = row[j] * wi + bi * read[j] + ki * vh[j];
                        row[j] = value;
                        o[j] += ri * value;
                    }
                }
                float mean = 0.0f, var = 0.0f;
                for (int j = 0; j < K; j++) mean += o[j];
                mean /= (float)K;
                for (int j = 0; j < K; j++) var += (o[j] - mean) * (o[j] - mean);
                const float inv = 1.0f / sqrtf(var / (float)K + dims->group_eps);
                for (int j = 0; j < K; j++) {
                    const int c = base + j;
                    out[c] = ((o[j] - mean) * inv * gn_w[c] + gn_b[c] + bonus * vh[j]) * gate[local + j];
                }
            }
            project_out(w + R7_O_PROJ, out, yq, ys, d, d, c0, c1, t, team, parts_a, &barrier, residual);

            /* The channel mix: key's columns [f0, f1), then value over the same rows. */
            float *shift1 = shift + d, *xf = mixed;
            layer_norm(residual, w[R7_FFN_NORM_W], w[R7_FFN_NORM_B], dims->eps, d, hidden);
            const float *fx_k = w[R7_FFN_X_K];
#pragma omp simd
            for (int i = 0; i < d; i++) xf[i] = hidden[i] + (shift1[i] - hidden[i]) * fx_k[i];
            quantize_for(w + R7_KEY, xf, d, hq, hs);
            if (f1 > f0) {
                linear_part(w + R7_KEY, xf, hq, hs, d, ffn, 0, d, f0, f1, 1, key + f0);
                for (int i = f0; i < f1; i++) {
                    const float relu = key[i] > 0.0f ? key[i] : 0.0f;
                    key[i] = relu * relu;
                }
            }
            project_out(w + R7_VALUE, key, yq, ys, ffn, d, f0, f1, t, team, parts_f, &barrier, residual);
            for (int i = c0; i < c1; i++) shift1[i] = hidden[i]; /* every read of shift1 is done */
        }
        layer_norm(residual, tail[R7_NORM_F_W], tail[R7_NORM_F_B], dims->eps, d, hidden);
        head_part(tail + R7_HEAD, hidden, hq, hs, d, vocab, t, team, logits, logit_bias);
    }
}
