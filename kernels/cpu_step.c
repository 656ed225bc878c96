/* One Mamba decode step on the CPU, fused: a token in, its logits out, the state advanced.
 *
 * Its plain twin is `MambaLM.step` in model/mamba.py (tests hold the two to fp32 tolerance).
 * Decoding one token streams every weight once and does little arithmetic, so its time is
 * memory bandwidth plus the overhead between operations. In PyTorch that overhead is some
 * 20 operator calls per layer (a few milliseconds per token on mamba-130m); here the whole
 * step is one call, and the matrix-vector products read the (in, out) weights row after row,
 * eight rows at a time, which streams them faster than a general matrix multiply does.
 *
 * Scope: batch 1, fp32 weights and state, one thread. `cpu_step.py` compiles this file with
 * the machine's C compiler on first use and falls back to the PyTorch step without one.
 *
 * Layouts (those of the PyTorch model, so no weight is copied):
 *   Linear weights (in, out) row-major; the embedding (d, vocab), a token's vector is a column;
 *   conv weight (d_in, k); A2 = A·log2(e) (d_in, n); conv state (d_in, k); ssm state (d_in, n).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    int32_t d, d_in, n, k, rank, vocab, layers;
    int32_t falcon;     /* weightless RMS norms on dt, B and C */
    float eps;          /* the blocks' and the final norm's */
    float mixer_eps;    /* FalconMamba's norms inside the mixer */
} MambaDims;

/* Per-layer weight pointers, in this order (NULL for an absent bias). Each linear layer has three:
 * its weight, its bias, and its scales — NULL for fp32 weights (in, out); for `quantize_int8`'s
 * layers, int8 weights (out, in) with one bf16 scale per output. */
enum {
    NORM, IN_W, IN_B, IN_S, CONV_W, CONV_B, X_W, X_B, X_S, DT_W, DT_B, DT_S, A2, D_SKIP,
    OUT_W, OUT_B, OUT_S, PER_LAYER
};
/* After the layers: the embedding, the final norm, and the LM head as a linear layer. */
enum { EMBEDDING, NORM_F, HEAD_W, HEAD_B, HEAD_S, TAIL };

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

/* y (out) = x (in) · W (in, out) + bias: W is read row after row, eight rows per pass over y,
 * so y stays in L1 and the weights stream through in order. */
static void matvec(const float *restrict x, const float *restrict W, const float *restrict bias,
                   int in, int out, float *restrict y) {
    if (bias) memcpy(y, bias, sizeof(float) * (size_t)out);
    else memset(y, 0, sizeof(float) * (size_t)out);
    int i = 0;
    for (; i + 8 <= in; i += 8) {
        const float *w = W + (size_t)i * out;
        const float x0 = x[i], x1 = x[i + 1], x2 = x[i + 2], x3 = x[i + 3];
        const float x4 = x[i + 4], x5 = x[i + 5], x6 = x[i + 6], x7 = x[i + 7];
        for (int j = 0; j < out; j++)
            y[j] += x0 * w[j] + x1 * w[j + out] + x2 * w[j + 2 * out] + x3 * w[j + 3 * out]
                  + x4 * w[j + 4 * out] + x5 * w[j + 5 * out] + x6 * w[j + 6 * out] + x7 * w[j + 7 * out];
    }
    for (; i < in; i++) {
        const float xi = x[i];
        const float *w = W + (size_t)i * out;
        for (int j = 0; j < out; j++) y[j] += xi * w[j];
    }
}

static inline float bf16_to_float(uint16_t bits) {
    const uint32_t widened = (uint32_t)bits << 16;
    float value;
    memcpy(&value, &widened, sizeof value);
    return value;
}

/* x rounded to the nearest bf16 (ties to even), kept in a float. */
static inline float round_to_bf16(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    bits = (bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u;
    float rounded;
    memcpy(&rounded, &bits, sizeof rounded);
    return rounded;
}

/* y (out) = x (in) · (W (out, in) int8 · scale (out) bf16)ᵀ + bias: each output is a dot product
 * of one int8 row. Like the aten kernel of the PyTorch path (`Int8Linear`), activations and
 * outputs are rounded to bf16, so prompts (read through that kernel) and steps agree. */
static void matvec_int8(const float *restrict x, const int8_t *restrict W, const uint16_t *restrict scale,
                        const float *restrict bias, int in, int out, float *restrict y) {
    float rounded[in];
    for (int i = 0; i < in; i++) rounded[i] = round_to_bf16(x[i]);
    /* One row per pass: a version summing four rows per load of x measured a third slower. */
    for (int o = 0; o < out; o++) {
        const int8_t *restrict w = W + (size_t)o * in;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int i = 0; i < in; i++) sum += rounded[i] * (float)w[i];
        y[o] = round_to_bf16(sum * bf16_to_float(scale[o])) + (bias ? bias[o] : 0.0f);
    }
}

/* A linear layer from its three pointers (weight, bias, scales): fp32 or int8, see PER_LAYER. */
static void linear(const float *x, const void *const *layer, int in, int out, float *y) {
    if (layer[2]) matvec_int8(x, layer[0], layer[2], layer[1], in, out, y);
    else matvec(x, layer[0], layer[1], in, out, y);
}

/* The floats of scratch space `mamba_step` needs. */
int64_t mamba_step_scratch(const MambaDims *dims) {
    return 3 * (int64_t)dims->d + 5 * (int64_t)dims->d_in + dims->rank + 2 * dims->n;
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
 * inputs. scratch: (2k-1)·d_in floats. */
void mamba_conv(int64_t l, int32_t d_in, int32_t k, const float *x, int64_t x_stride,
                const float *weight, const float *bias, float *conv_state, float *scratch, float *out) {
    float *taps = scratch;                     /* (k, d_in): the kernel, one row per tap */
    float *history = scratch + (size_t)k * d_in; /* (k-1, d_in): the inputs before the prompt */
    for (int j = 0; j < k; j++)
        for (int c = 0; c < d_in; c++) taps[(size_t)j * d_in + c] = weight[(size_t)c * k + j];
    for (int j = 0; j + 1 < k; j++)
        for (int c = 0; c < d_in; c++) history[(size_t)j * d_in + c] = conv_state[(size_t)c * k + j + 1];
#define INPUT(tau) ((tau) < 0 ? history + (size_t)((tau) + k - 1) * d_in : x + (size_t)(tau) * x_stride)
    for (int64_t t = 0; t < l; t++) {
        float *row = out + (size_t)t * d_in;
        for (int c = 0; c < d_in; c++) row[c] = bias ? bias[c] : 0.0f;
        for (int j = 0; j < k; j++) {
            const float *input = INPUT(t - (k - 1) + j), *tap = taps + (size_t)j * d_in;
#pragma omp simd
            for (int c = 0; c < d_in; c++) row[c] += tap[c] * input[c];
        }
#pragma omp simd
        for (int c = 0; c < d_in; c++) row[c] = silu(row[c]);
    }
    for (int j = 0; j < k; j++) {
        const float *input = INPUT(l - k + j);
        for (int c = 0; c < d_in; c++) conv_state[(size_t)c * k + j] = input[c];
    }
#undef INPUT
}

/* The selective scan of a prompt (its twin: `selective_scan` in model/mamba.py, plus the softplus,
 * skip and gate around it), one batch row: ssm_token over l tokens in order. Rows of x, dt, z, y
 * (d_in floats) and of B, C (n floats) are `*_stride` floats apart; h (d_in, n) is advanced in
 * place; delta: d_in floats of scratch. */
void mamba_scan(int64_t l, int32_t d_in, int32_t n,
                const float *x, int64_t x_stride, const float *dt, int64_t dt_stride,
                const float *A2_, const float *B, const float *C, int64_t bc_stride,
                const float *D, const float *z, int64_t z_stride,
                float *h, float *delta, float *y, int64_t y_stride) {
    for (int64_t t = 0; t < l; t++)
        ssm_token(d_in, n, x + t * x_stride, dt + t * dt_stride, A2_, B + t * bc_stride,
                  C + t * bc_stride, D, z + t * z_stride, h, delta, y + t * y_stride);
}

/* The mixer of one layer: hidden (d) → out (d), advancing conv (d_in, k) and ssm (d_in, n). */
static void mixer_step(const MambaDims *dims, const void *const *w, const float *hidden,
                       float *conv, float *ssm, float *scratch, float *out) {
    const int d = dims->d, d_in = dims->d_in, n = dims->n, k = dims->k, rank = dims->rank;
    float *xz = scratch;               /* 2·d_in: x, then the gate z */
    float *x = scratch + 2 * d_in;     /* d_in: x after the convolution and SiLU */
    float *dbc = x + d_in;             /* rank + 2n: Δ (low rank), B, C */
    float *dt = dbc + rank + 2 * n;    /* d_in */
    float *y = dt + d_in;              /* d_in */
    const float *z = xz + d_in;

    linear(hidden, w + IN_W, d, 2 * d_in, xz);

    /* Slide x into the convolution's window, then take its dot product with the kernel. */
    const float *conv_w = w[CONV_W], *conv_b = w[CONV_B];
    for (int c = 0; c < d_in; c++) {
        float *window = conv + (size_t)c * k;
        memmove(window, window + 1, sizeof(float) * (size_t)(k - 1));
        window[k - 1] = xz[c];
        float sum = conv_b ? conv_b[c] : 0.0f;
        for (int j = 0; j < k; j++) sum += window[j] * conv_w[(size_t)c * k + j];
        x[c] = sum;
    }
#pragma omp simd
    for (int c = 0; c < d_in; c++) x[c] = silu(x[c]);

    linear(x, w + X_W, d_in, rank + 2 * n, dbc);
    float *B = dbc + rank, *C = B + n;
    if (dims->falcon) {
        rms_norm(dbc, NULL, dims->mixer_eps, rank, dbc);
        rms_norm(B, NULL, dims->mixer_eps, n, B);
        rms_norm(C, NULL, dims->mixer_eps, n, C);
    }
    linear(dbc, w + DT_W, rank, d_in, dt);
    ssm_token(d_in, n, x, dt, w[A2], B, C, w[D_SKIP], z, ssm, dt, y);
    linear(y, w + OUT_W, d_in, d, out);
}

/* Read `token`: logits (vocab) out, conv_state (layers, d_in, k) and ssm_state (layers, d_in, n)
 * advanced in place. `weights` holds PER_LAYER pointers per layer, then TAIL more. */
void mamba_step(const MambaDims *dims, const void *const *weights, int64_t token,
                float *conv_state, float *ssm_state, float *scratch, float *logits) {
    const int d = dims->d, d_in = dims->d_in, vocab = dims->vocab;
    const void *const *tail = weights + (size_t)dims->layers * PER_LAYER;
    const float *embedding = tail[EMBEDDING];
    float *residual = scratch, *hidden = scratch + d, *mixed = scratch + 2 * d, *rest = scratch + 3 * d;

    for (int i = 0; i < d; i++) residual[i] = embedding[(size_t)i * vocab + token];
    for (int layer = 0; layer < dims->layers; layer++) {
        const void *const *w = weights + (size_t)layer * PER_LAYER;
        rms_norm(residual, w[NORM], dims->eps, d, hidden);
        mixer_step(dims, w, hidden, conv_state + (size_t)layer * d_in * dims->k,
                   ssm_state + (size_t)layer * d_in * dims->n, rest, mixed);
        for (int i = 0; i < d; i++) residual[i] += mixed[i];
    }
    rms_norm(residual, tail[NORM_F], dims->eps, d, hidden);
    linear(hidden, tail + HEAD_W, d, vocab, logits);
}
