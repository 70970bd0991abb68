/* The decode step of a Llama-style model in one call: core/fastc.py compiles this with the system C
 * compiler (-O3 -march=native) on first use and calls it through ctypes.
 *
 * Why C: at Shiren's model size (d=256, 4 layers) a step is ~30 GEMMs and elementwise ops of a few
 * thousand numbers each. Through PyTorch each op costs 15-60 us of dispatch and cold instruction
 * cache, ten times its arithmetic; here the whole step is one call and stays in cache.
 *
 * Layout: weights are transposed to (in, out) and cut into panels of 32 output columns, each panel
 * (in, 32) contiguous (out padded with zeros to a multiple of 32), so a block of the product streams
 * one contiguous panel; fp32, bf16 (raw uint16) or int8 with one float scale per output column (the
 * scales follow the panels, see q8_scales; a product is scaled once, at its store). Activations and
 * the KV cache are fp32. kv: (n_layer, max_rows, max_len, 2, n_kv, hd), K then V.
 * Numerics follow HF LlamaForCausalLM: RMSNorm in fp32, rotate-half RoPE, softmax attention, SwiGLU.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif
#if !defined(__AVX512F__) && defined(__AVX2__) && defined(__FMA__)
#define SHIREN_AVX2 1 /* the AVX2+FMA kernels below (CPUs of this kind without AVX-512) */
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef PAR_MIN_WORK
#define PAR_MIN_WORK 100000L /* multiply-adds below which a second thread costs more than it saves */
#endif
#ifndef PAR_MIN_ROWS
#define PAR_MIN_ROWS 8 /* tokens below which the per-token loops stay on one thread */
#endif

typedef struct {
    int n_layer, n_head, n_kv, hd, d, ff, vocab, max_rows, max_len, wbf16, head_bf16; /* weight dtypes: W_* */
    float eps;
} Dims;

/* Pointer table (see core/fastc.py): embed (V,d) row-major; lm_head_t (d,V); norm (d); cos, sin
 * (max_len, hd/2); kv; then per layer: ln1 (d), wqkv_t (d,(H+2Hkv)hd), wo_t (H·hd,d), ln2 (d),
 * wgu_t (d, 2ff) gate then up, wdown_t (ff, d). Norm weights are fp32. */
enum { P_EMBED, P_LMHEAD, P_NORM, P_COS, P_SIN, P_KV, P_LAYER0 };
enum { L_LN1, L_QKV, L_WO, L_LN2, L_GU, L_DOWN, L_N };

enum { W_F32 = 0, W_BF16 = 1, W_Q8 = 2 };

/* An int8 matrix's column scales: float32, one per (padded) output column, after its panels at the next
 * 64-byte boundary (core/fastc.py: panels_q8). NULL for the other dtypes. */
static inline const float *q8_scales(const void *W, int wtype, int in, int out) {
    if (wtype != W_Q8) return NULL;
    size_t bytes = (size_t)((out + 31) / 32 * 32) * in;
    return (const float *)((const char *)W + (bytes + 63) / 64 * 64);
}

static inline float bf16f(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* y[i] = exp(x[i] - sub) for i < n. glibc's expf is scalar here (no libmvec without OpenMP), and a
 * step needs ~50k of them (SiLU, the softmax over the vocabulary): Cody-Waite range reduction and a
 * degree-7 Taylor polynomial on |r| <= ln2/2 (relative error < 1e-7), scaled by 2^n with vscalefps. */
#if defined(__AVX512F__)
static inline __m512 exp512(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.7f)), _mm512_set1_ps(-103.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504089f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.98412698e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.38888889e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.33333333e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.16666667e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.66666667e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}
#endif

#if defined(SHIREN_AVX2)
/* The same reduction and polynomial in 8 lanes; 2^n is built in the exponent bits (no vscalefps), so the
 * input is clamped to the normal range: exp(-87) ~ 1.6e-38 stands in for smaller results, which only
 * ever meet a sum of terms >= 1 (softmax) or 1 + e (SiLU). */
static inline __m256 exp256(__m256 x) {
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.3f)), _mm256_set1_ps(-87.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504089f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.98412698e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.38888889e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.33333333e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.16666667e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.66666667e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}
#endif

static void vexp(const float *x, float *y, int n, float sub) {
    int i = 0;
#if defined(SHIREN_AVX2)
    __m256 s8 = _mm256_set1_ps(sub);
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), s8)));
#endif
#if defined(__AVX512F__)
    __m512 s = _mm512_set1_ps(sub);
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), s)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), s)));
        i = n;
    }
#endif
    for (; i < n; i++) y[i] = expf(x[i] - sub);
}

/* y (N, out) = x (N, in) @ W (in, out), or y += … when acc. */
#if defined(__AVX512F__)
static inline __m512 loadw(const void *W, int wbf16, size_t idx, __mmask16 m) {
    if (wbf16 == W_Q8)
        return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, (const int8_t *)W + idx)));
    if (wbf16) {
        __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)W + idx);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    return _mm512_maskz_loadu_ps(m, (const float *)W + idx);
}

/* One block: rows n0 .. n0+nb-1 (nb <= 4) of y, output columns o .. o+31 (masks m0, m1 for the tail).
 * Accumulators are named registers: an indexed array of __m512 would spill to the stack. */
static inline void block4(const float *xr, int nb, int in, const void *W, int wbf16, int out, int o,
                          __mmask16 m0, __mmask16 m1, float *y, int acc, const float *sc) {
    __m512 a00 = _mm512_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    const float *x1 = xr + (nb > 1 ? in : 0), *x2 = xr + (nb > 2 ? 2 * in : 0), *x3 = xr + (nb > 3 ? 3 * in : 0);
    for (int i = 0; i < in; i++) {
        size_t idx = (size_t)o * in + (size_t)i * 32;  /* panel o/32, row i */
        __m512 w0 = loadw(W, wbf16, idx, 0xFFFF), w1 = loadw(W, wbf16, idx + 16, 0xFFFF);
        __m512 b0 = _mm512_set1_ps(xr[i]), b1 = _mm512_set1_ps(x1[i]);
        __m512 b2 = _mm512_set1_ps(x2[i]), b3 = _mm512_set1_ps(x3[i]);
        a00 = _mm512_fmadd_ps(b0, w0, a00); a01 = _mm512_fmadd_ps(b0, w1, a01);
        a10 = _mm512_fmadd_ps(b1, w0, a10); a11 = _mm512_fmadd_ps(b1, w1, a11);
        a20 = _mm512_fmadd_ps(b2, w0, a20); a21 = _mm512_fmadd_ps(b2, w1, a21);
        a30 = _mm512_fmadd_ps(b3, w0, a30); a31 = _mm512_fmadd_ps(b3, w1, a31);
    }
    __m512 r[4][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}};
    for (int k = 0; k < nb; k++) {  /* rows past nb computed duplicates of row 0..: not stored */
        float *yr = y + (size_t)k * out + o;
        __m512 v0 = r[k][0], v1 = r[k][1];
        if (sc) {
            v0 = _mm512_mul_ps(v0, _mm512_loadu_ps(sc + o));
            v1 = _mm512_mul_ps(v1, _mm512_loadu_ps(sc + o + 16));
        }
        if (acc) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, yr));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, yr + 16));
        }
        _mm512_mask_storeu_ps(yr, m0, v0);
        _mm512_mask_storeu_ps(yr + 16, m1, v1);
    }
}

/* Eight rows at once: 16 accumulators, so each weight vector loaded feeds 8 FMAs (~1.35x the 4-row
 * block's rate at batch 64: 110 vs 85 GFLOP/s on one core here). */
static inline void block8(const float *xr, int in, const void *W, int wbf16, int out, int o,
                          __mmask16 m0, __mmask16 m1, float *y, int acc, const float *sc) {
#define Z8(k) __m512 c##k##0 = _mm512_setzero_ps(), c##k##1 = _mm512_setzero_ps();
    Z8(0) Z8(1) Z8(2) Z8(3) Z8(4) Z8(5) Z8(6) Z8(7)
    for (int i = 0; i < in; i++) {
        size_t idx = (size_t)o * in + (size_t)i * 32;
        __m512 w0 = loadw(W, wbf16, idx, 0xFFFF), w1 = loadw(W, wbf16, idx + 16, 0xFFFF);
#define F8(k) { __m512 b = _mm512_set1_ps(xr[(size_t)(k) * in + i]); \
                c##k##0 = _mm512_fmadd_ps(b, w0, c##k##0); c##k##1 = _mm512_fmadd_ps(b, w1, c##k##1); }
        F8(0) F8(1) F8(2) F8(3) F8(4) F8(5) F8(6) F8(7)
    }
#define S8(k) { float *yr = y + (size_t)(k) * out + o; __m512 v0 = c##k##0, v1 = c##k##1; \
                if (sc) { v0 = _mm512_mul_ps(v0, s0); v1 = _mm512_mul_ps(v1, s1); } \
                if (acc) { v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, yr)); \
                           v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, yr + 16)); } \
                _mm512_mask_storeu_ps(yr, m0, v0); _mm512_mask_storeu_ps(yr + 16, m1, v1); }
    __m512 s0 = sc ? _mm512_loadu_ps(sc + o) : _mm512_setzero_ps(), s1 = sc ? _mm512_loadu_ps(sc + o + 16) : s0;
    S8(0) S8(1) S8(2) S8(3) S8(4) S8(5) S8(6) S8(7)
#undef Z8
#undef F8
#undef S8
}

static void matmul(const float *x, int N, int in, const void *W, int wbf16, int out, float *y, int acc) {
    const float *sc = q8_scales(W, wbf16, in, out);
#pragma omp parallel for schedule(static) if ((long)N * in * out >= PAR_MIN_WORK)
    for (int o = 0; o < out; o += 32) {
        int r0 = out - o >= 16 ? 16 : out - o, r1 = out - o - 16 >= 16 ? 16 : (out - o - 16 > 0 ? out - o - 16 : 0);
        __mmask16 m0 = (__mmask16)(r0 == 16 ? 0xFFFF : (1u << r0) - 1), m1 = (__mmask16)(r1 == 16 ? 0xFFFF : (1u << r1) - 1);
        int n0 = 0;
        for (; n0 + 8 <= N; n0 += 8)
            block8(x + (size_t)n0 * in, in, W, wbf16, out, o, m0, m1, y + (size_t)n0 * out, acc, sc);
        for (; n0 < N; n0 += 4)
            block4(x + (size_t)n0 * in, N - n0 < 4 ? N - n0 : 4, in, W, wbf16, out, o, m0, m1, y + (size_t)n0 * out, acc,
                   sc);
    }
}
#elif defined(SHIREN_AVX2)
static inline __m256 loadw8(const void *W, int wbf16, size_t idx) {
    if (wbf16 == W_Q8)
        return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)((const int8_t *)W + idx))));
    if (wbf16) {
        __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)W + idx));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    return _mm256_loadu_ps((const float *)W + idx);
}

/* y[0..valid) (+)= the 8 lanes of v; valid may be < 8 only in the last panel. */
static inline void store8(float *yr, __m256 v, int valid, int acc) {
    if (valid >= 8) {
        if (acc) v = _mm256_add_ps(v, _mm256_loadu_ps(yr));
        _mm256_storeu_ps(yr, v);
        return;
    }
    float t[8];
    _mm256_storeu_ps(t, v);
    for (int j = 0; j < valid; j++) yr[j] = acc ? yr[j] + t[j] : t[j];
}

/* Rows n0 .. n0+nb-1 (nb <= 6) of y, the 16 output columns o+h .. o+h+15 of panel o: 12 accumulators, 2
 * weight vectors and a broadcast fill the 16 ymm registers, so each weight load feeds 6 row FMAs.
 * Rows past nb read row 0 again and are not stored. */
static inline void block6(const float *xr, int nb, int in, const void *W, int wbf16, int out, int o, int h,
                          float *y, int acc, const float *sc) {
    const float *x1 = xr + (nb > 1 ? in : 0), *x2 = xr + (nb > 2 ? 2 * in : 0), *x3 = xr + (nb > 3 ? 3 * in : 0);
    const float *x4 = xr + (nb > 4 ? 4 * in : 0), *x5 = xr + (nb > 5 ? 5 * in : 0);
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00;
    __m256 a30 = a00, a31 = a00, a40 = a00, a41 = a00, a50 = a00, a51 = a00;
    for (int i = 0; i < in; i++) {
        size_t idx = (size_t)o * in + (size_t)i * 32 + h;  /* panel o/32, row i, half h */
        __m256 w0 = loadw8(W, wbf16, idx), w1 = loadw8(W, wbf16, idx + 8), b;
        b = _mm256_set1_ps(xr[i]); a00 = _mm256_fmadd_ps(b, w0, a00); a01 = _mm256_fmadd_ps(b, w1, a01);
        b = _mm256_set1_ps(x1[i]); a10 = _mm256_fmadd_ps(b, w0, a10); a11 = _mm256_fmadd_ps(b, w1, a11);
        b = _mm256_set1_ps(x2[i]); a20 = _mm256_fmadd_ps(b, w0, a20); a21 = _mm256_fmadd_ps(b, w1, a21);
        b = _mm256_set1_ps(x3[i]); a30 = _mm256_fmadd_ps(b, w0, a30); a31 = _mm256_fmadd_ps(b, w1, a31);
        b = _mm256_set1_ps(x4[i]); a40 = _mm256_fmadd_ps(b, w0, a40); a41 = _mm256_fmadd_ps(b, w1, a41);
        b = _mm256_set1_ps(x5[i]); a50 = _mm256_fmadd_ps(b, w0, a50); a51 = _mm256_fmadd_ps(b, w1, a51);
    }
    __m256 r[6][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}, {a40, a41}, {a50, a51}};
    int v0 = out - (o + h), v1 = v0 - 8;
    __m256 s0 = sc ? _mm256_loadu_ps(sc + o + h) : _mm256_setzero_ps(), s1 = sc ? _mm256_loadu_ps(sc + o + h + 8) : s0;
    for (int k = 0; k < nb; k++) {
        float *yr = y + (size_t)k * out + o + h;
        store8(yr, sc ? _mm256_mul_ps(r[k][0], s0) : r[k][0], v0, acc);
        if (v1 > 0) store8(yr + 8, sc ? _mm256_mul_ps(r[k][1], s1) : r[k][1], v1, acc);
    }
}

static void matmul(const float *x, int N, int in, const void *W, int wbf16, int out, float *y, int acc) {
    const float *sc = q8_scales(W, wbf16, in, out);
#pragma omp parallel for schedule(static) if ((long)N * in * out >= PAR_MIN_WORK)
    for (int o = 0; o < out; o += 32)
        for (int h = 0; h < 32 && o + h < out; h += 16)
            for (int n0 = 0; n0 < N; n0 += 6)
                block6(x + (size_t)n0 * in, N - n0 < 6 ? N - n0 : 6, in, W, wbf16, out, o, h,
                       y + (size_t)n0 * out, acc, sc);
}
#else
/* Portable: the same panels, each row of a panel a contiguous run of 32 outputs (vectorised by the
 * compiler for whatever SIMD -march=native gives). */
static void matmul(const float *x, int N, int in, const void *W, int wbf16, int out, float *y, int acc) {
    const float *sc = q8_scales(W, wbf16, in, out);
#pragma omp parallel for schedule(static) if ((long)N * in * out >= PAR_MIN_WORK)
    for (int o0 = 0; o0 < out; o0 += 32) {
        int w = out - o0 < 32 ? out - o0 : 32;
        for (int n = 0; n < N; n++) {
            const float *xr = x + (size_t)n * in;
            float a[32] = {0};
            for (int i = 0; i < in; i++) {
                float xv = xr[i];
                size_t base = (size_t)o0 * in + (size_t)i * 32;
                if (wbf16 == W_Q8) {
                    const int8_t *wr = (const int8_t *)W + base;
                    for (int j = 0; j < 32; j++) a[j] += xv * (float)wr[j];
                } else if (wbf16) {
                    const uint16_t *wr = (const uint16_t *)W + base;
                    for (int j = 0; j < 32; j++) a[j] += xv * bf16f(wr[j]);
                } else {
                    const float *wr = (const float *)W + base;
                    for (int j = 0; j < 32; j++) a[j] += xv * wr[j];
                }
            }
            float *yr = y + (size_t)n * out + o0;
            if (sc)
                for (int j = 0; j < w; j++) a[j] *= sc[o0 + j];
            for (int j = 0; j < w; j++) yr[j] = acc ? yr[j] + a[j] : a[j];
        }
    }
}
#endif

static void rmsnorm(const float *x, const float *w, int d, float eps, float *out) {
    float ss = 0.f;
    for (int i = 0; i < d; i++) ss += x[i] * x[i];
    float s = 1.0f / sqrtf(ss / d + eps);
    for (int i = 0; i < d; i++) out[i] = x[i] * s * w[i];
}

static void rope(float *v, const float *cs, const float *sn, int hd) {
    int h = hd / 2;
    for (int i = 0; i < h; i++) {
        float a = v[i], b = v[i + h];
        v[i] = a * cs[i] - b * sn[i];
        v[i + h] = b * cs[i] + a * sn[i];
    }
}

static void embed_row(const Dims *D, void *const *P, int64_t tok, float *out) {
    if (D->head_bf16) {
        const uint16_t *e = (const uint16_t *)P[P_EMBED] + (size_t)tok * D->d;
        for (int i = 0; i < D->d; i++) out[i] = bf16f(e[i]);
    } else {
        memcpy(out, (const float *)P[P_EMBED] + (size_t)tok * D->d, sizeof(float) * D->d);
    }
}

/* Feed tokens (B, T) to cache rows `rows` at positions start[b] .. start[b]+T-1; write the final-norm
 * hidden state of each row's last token to hidden (B, d). Returns 0, or -1 when out of memory. */
int shiren_hidden(const Dims *D, void *const *P, int B, int T, const int64_t *tokens, const int64_t *rows,
                  const int64_t *start, float *hidden) {
    const int d = D->d, H = D->n_head, Hkv = D->n_kv, hd = D->hd, ff = D->ff, N = B * T;
    const int qkv_w = (H + 2 * Hkv) * hd, kvw = 2 * Hkv * hd, rep = H / Hkv;
    const size_t row_stride = (size_t)D->max_len * kvw, layer_stride = (size_t)D->max_rows * row_stride;
    float *x = malloc(sizeof(float) * N * d), *xn = malloc(sizeof(float) * N * d);
    float *qkv = malloc(sizeof(float) * N * qkv_w), *att = malloc(sizeof(float) * N * H * hd);
    float *gu = malloc(sizeof(float) * N * 2 * ff), *act = malloc(sizeof(float) * N * ff);
    if (!x || !xn || !qkv || !att || !gu || !act) {
        free(x); free(xn); free(qkv); free(att); free(gu); free(act);
        return -1;
    }
    const float *cosT = P[P_COS], *sinT = P[P_SIN];
    float *kv = P[P_KV];
    const float scale = 1.0f / sqrtf((float)hd);
    for (int n = 0; n < N; n++) embed_row(D, P, tokens[n], x + (size_t)n * d);
    for (int l = 0; l < D->n_layer; l++) {
        void *const *LP = P + P_LAYER0 + l * L_N;
        float *kvl = kv + l * layer_stride;
#pragma omp parallel for schedule(static) if (N >= PAR_MIN_ROWS)
        for (int n = 0; n < N; n++) rmsnorm(x + (size_t)n * d, LP[L_LN1], d, D->eps, xn + (size_t)n * d);
        matmul(xn, N, d, LP[L_QKV], D->wbf16, qkv_w, qkv, 0);
        /* RoPE on q and k, then K and V into the cache at each token's position. */
#pragma omp parallel for schedule(static) if (N >= PAR_MIN_ROWS)
        for (int n = 0; n < N; n++) {
            int b = n / T, pos = (int)start[b] + n % T;
            float *q = qkv + (size_t)n * qkv_w;
            const float *cs = cosT + (size_t)pos * (hd / 2), *sn = sinT + (size_t)pos * (hd / 2);
            for (int h = 0; h < H + Hkv; h++) rope(q + h * hd, cs, sn, hd);
            memcpy(kvl + rows[b] * row_stride + (size_t)pos * kvw, q + H * hd, sizeof(float) * kvw);
        }
        /* Attention: token (b, t) sees its row's keys at positions 0 .. start[b]+t. */
#pragma omp parallel if (N >= PAR_MIN_ROWS)
        {
            float *sc = malloc(sizeof(float) * D->max_len);
#pragma omp for schedule(static)
            for (int n = 0; n < N; n++) {
                int b = n / T, L = (int)start[b] + n % T + 1;
                const float *cache = kvl + rows[b] * row_stride;
                for (int h = 0; h < H; h++) {
                    const float *q = qkv + (size_t)n * qkv_w + h * hd;
                    int kh = h / rep;
                    float mx = -INFINITY, sum = 0.f;
                    for (int j = 0; j < L; j++) {
                        const float *k = cache + (size_t)j * kvw + kh * hd;
                        float s = 0.f;
                        for (int i = 0; i < hd; i++) s += q[i] * k[i];
                        sc[j] = s * scale;
                        mx = sc[j] > mx ? sc[j] : mx;
                    }
                    for (int j = 0; j < L; j++) { sc[j] = expf(sc[j] - mx); sum += sc[j]; }
                    float *o = att + (size_t)n * H * hd + h * hd;
                    for (int i = 0; i < hd; i++) o[i] = 0.f;
                    for (int j = 0; j < L; j++) {
                        const float *v = cache + (size_t)j * kvw + (Hkv + kh) * hd;
                        float p = sc[j] / sum;
                        for (int i = 0; i < hd; i++) o[i] += p * v[i];
                    }
                }
            }
            free(sc);
        }
        matmul(att, N, H * hd, LP[L_WO], D->wbf16, d, x, 1);
#pragma omp parallel for schedule(static) if (N >= PAR_MIN_ROWS)
        for (int n = 0; n < N; n++) rmsnorm(x + (size_t)n * d, LP[L_LN2], d, D->eps, xn + (size_t)n * d);
        matmul(xn, N, d, LP[L_GU], D->wbf16, 2 * ff, gu, 0);
#pragma omp parallel for schedule(static) if (N >= PAR_MIN_ROWS)
        for (int n = 0; n < N; n++) {
            const float *g = gu + (size_t)n * 2 * ff, *u = g + ff;
            float *a = act + (size_t)n * ff;
            for (int i = 0; i < ff; i++) a[i] = -g[i];
            vexp(a, a, ff, 0.f);  /* exp(-g) */
            for (int i = 0; i < ff; i++) a[i] = g[i] / (1.0f + a[i]) * u[i];
        }
        matmul(act, N, ff, LP[L_DOWN], D->wbf16, d, x, 1);
    }
    for (int b = 0; b < B; b++) rmsnorm(x + (size_t)(b * T + T - 1) * d, P[P_NORM], d, D->eps, hidden + (size_t)b * d);
    free(x); free(xn); free(qkv); free(att); free(gu); free(act);
    return 0;
}

/* logits (B, V) = hidden (B, d) @ lm_head_t (d, V). */
void shiren_logits(const Dims *D, void *const *P, int B, const float *hidden, float *logits) {
    matmul(hidden, B, D->d, P[P_LMHEAD], D->head_bf16, D->vocab, logits, 0);
}

/* ---- Constraints and sampling (core.engine) ------------------------------------------------------
 * One row per candidate; a row's state: alive templates (NT bytes), rhyme classes still open (G bytes),
 * characters used (V bytes), failed (1 byte). Same rules as core.generate's row_mask / update_row. */
typedef struct {
    int V, G;
    const uint8_t *content, *ping, *ze; /* (V) */
    const int32_t *cls_ptr, *cls_idx;   /* CSR: the rhyme classes of token v are cls_idx[cls_ptr[v] .. cls_ptr[v+1]) */
    const uint8_t *cls_tone;            /* ... reached through a 平 (bit 0) and/or a 仄 (bit 1) reading */
    const int32_t *grp_ptr, *grp_idx;   /* CSR: the tokens of class g are grp_idx[grp_ptr[g] .. grp_ptr[g+1]) */
    const uint8_t *grp_tone;            /* ... with the same tone bits */
} Vocab;

enum { M_PING, M_ZE, M_ZHONG };

/* Tones allowed by the templates in `sel` (NT bytes): bit 0 平, bit 1 仄. */
static int tones_of(int NT, const uint8_t *marks, const uint8_t *sel) {
    int t = 0;
    for (int k = 0; k < NT; k++) {
        if (!sel[k]) continue;
        const uint8_t *m = marks + 3 * k;
        if (m[M_ZHONG]) t |= 3;
        if (m[M_PING]) t |= 1;
        if (m[M_ZE]) t |= 2;
    }
    return t;
}

/* mask (b, V): the characters each row may put in this slot. A row with no legal unused character
 * gets its used set reset to the fixed characters; with no legal one at all it is marked failed and
 * may take any content character (the poem is dropped later). Branch-free byte loops (vectorised). */
void shiren_mask(const Vocab *vc, int b, int NT, const uint8_t *marks, const uint8_t *rhyme, const uint8_t *alive,
                 const uint8_t *groups, uint8_t *used, uint8_t *failed, const int64_t *fixed, int n_fixed,
                 uint8_t *mask) {
    const int V = vc->V;
    if (V <= 0) return;
#pragma omp parallel if (b >= 8)
    {
        uint8_t *sel = malloc(NT > 0 ? NT : 1), *ing = malloc(V);
#pragma omp for schedule(static)
        for (int r = 0; r < b; r++) {
            const uint8_t *al = alive + (size_t)r * NT, *gr = groups + (size_t)r * vc->G;
            uint8_t *us = used + (size_t)r * V, *mk = mask + (size_t)r * V;
            int any_r = 0, any_o = 0;
            for (int k = 0; k < NT; k++) { any_r |= al[k] && rhyme[k]; any_o |= al[k] && !rhyme[k]; }
            int t_all = tones_of(NT, marks, al), t_r = 0, t_o = 0;
            if (any_r) {
                for (int k = 0; k < NT; k++) sel[k] = al[k] && rhyme[k];
                t_r = tones_of(NT, marks, sel);
                for (int k = 0; k < NT; k++) sel[k] = al[k] && !rhyme[k];
                t_o = any_o ? tones_of(NT, marks, sel) : 0;
                /* characters of the row's still-open rhyme classes, by the tone of the reading that gets
                 * them there: a rhyme in a 仄 position must rhyme by a 仄 reading (词's 多音字) */
                memset(ing, 0, (size_t)V);
                for (int g = 0; g < vc->G; g++)
                    if (gr[g])
                        for (int j = vc->grp_ptr[g]; j < vc->grp_ptr[g + 1]; j++)
                            ing[vc->grp_idx[j]] |= vc->grp_tone[j];
            }
            const uint8_t pa = t_all & 1, za = (t_all >> 1) & 1, pr = t_r & 1, zr = (t_r >> 1) & 1;
            const uint8_t po = t_o & 1, zo = (t_o >> 1) & 1;
            const uint8_t *cn = vc->content, *pg = vc->ping, *ze = vc->ze;
            int n = 0;
            for (int pass = 0; pass < 2; pass++) {
                n = 0;
                if (!any_r) {
                    for (int v = 0; v < V; v++) {
                        uint8_t ok = cn[v] & (us[v] ^ 1) & ((pa & pg[v]) | (za & ze[v]));
                        mk[v] = ok;
                        n += ok;
                    }
                } else {
                    for (int v = 0; v < V; v++) {
                        uint8_t ok = cn[v] & (us[v] ^ 1) &
                                     ((pr & pg[v] & ing[v]) | (zr & ze[v] & (ing[v] >> 1)) | (po & pg[v]) |
                                      (zo & ze[v]));
                        mk[v] = ok;
                        n += ok;
                    }
                }
                if (n || pass) break;
                memset(us, 0, (size_t)V); /* dead end: allow a repeated character (never a fixed one) */
                for (int i = 0; i < n_fixed; i++)
                    if (vc->content[fixed[i]]) us[fixed[i]] = 1;
            }
            if (!n) {
                failed[r] = 1;
                memcpy(mk, vc->content, (size_t)V);
            }
        }
        free(sel); free(ing);
    }
}

/* Narrow each row's templates and rhyme classes after tok[r] went into this slot. */
void shiren_update(const Vocab *vc, int b, int NT, const uint8_t *marks, const uint8_t *rhyme, const int64_t *tok,
                   uint8_t *alive, uint8_t *groups, uint8_t *used, uint8_t *failed) {
    const int V = vc->V, G = vc->G;
    uint8_t *keep = malloc(NT > 0 ? NT : 1);
    for (int r = 0; r < b; r++) {
        int v = (int)tok[r], tp = vc->ping[v], tz = vc->ze[v];
        uint8_t *al = alive + (size_t)r * NT, *gr = groups + (size_t)r * G;
        int any_r = 0, any_o = 0, any = 0;
        for (int k = 0; k < NT; k++) {
            const uint8_t *m = marks + 3 * k;
            keep[k] = al[k] && (m[M_ZHONG] || (m[M_PING] && tp) || (m[M_ZE] && tz));
            any_r |= keep[k] && rhyme[k];
            any_o |= keep[k] && !rhyme[k];
        }
        int all_r = any_r && !any_o, mixed = any_r && any_o, has = 0;
        /* the rhyme's tone, from the rhyming templates: only the classes of readings in that tone count */
        int rt = 0;
        for (int k = 0; k < NT; k++)
            if (keep[k] && rhyme[k]) {
                const uint8_t *m = marks + 3 * k;
                rt |= (m[M_ZHONG] ? 3 : 0) | (m[M_PING] ? 1 : 0) | (m[M_ZE] ? 2 : 0);
            }
        for (int j = vc->cls_ptr[v]; j < vc->cls_ptr[v + 1]; j++)
            has |= gr[vc->cls_idx[j]] && (vc->cls_tone[j] & rt);
        int choose = mixed && has && tp;
        if (mixed)
            for (int k = 0; k < NT; k++) keep[k] = keep[k] && (choose ? rhyme[k] : !rhyme[k]);
        if ((all_r && has) || choose) { /* the row's open classes narrow to this character's */
            uint8_t *newg = calloc(G, 1);
            for (int j = vc->cls_ptr[v]; j < vc->cls_ptr[v + 1]; j++)
                if (vc->cls_tone[j] & rt) newg[vc->cls_idx[j]] = gr[vc->cls_idx[j]];
            memcpy(gr, newg, G);
            free(newg);
        }
        if (all_r && !has) failed[r] = 1;
        for (int k = 0; k < NT; k++) any |= keep[k];
        if (!any) failed[r] = 1;
        else memcpy(al, keep, NT);
        if (vc->content[v]) used[(size_t)r * V + v] = 1;
    }
    free(keep);
}

/* The nucleus: among allowed values p[0..n) (all > 0) taken in descending order (ties: lower token id
 * first) while the mass before them is < limit, the smallest kept value tau and how many of the tokens
 * equal to tau are kept (the lowest-id ones). A three-way quickselect on mass: expected O(n), no sort. */
/* The row's largest logit, and its largest allowed one (-inf when none is). Vectorised by hand: the
 * compiler leaves a max reduction scalar here (NaN rules), a dependent compare per token. */
static void row_max(const float *l, const uint8_t *mk, int V, float *amx, float *mx) {
    int v = 0;
    float a = -INFINITY, b = -INFINITY;
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    __m512 va = _mm512_set1_ps(-INFINITY), vb = va;
    for (; v + 16 <= V; v += 16) {
        __m512 x = _mm512_loadu_ps(l + v);
        __m128i m8 = _mm_loadu_si128((const __m128i *)(mk + v));
        va = _mm512_max_ps(va, x);
        vb = _mm512_mask_max_ps(vb, _mm_test_epi8_mask(m8, m8), vb, x);
    }
    a = _mm512_reduce_max_ps(va);
    b = _mm512_reduce_max_ps(vb);
#elif defined(SHIREN_AVX2)
    __m256 va = _mm256_set1_ps(-INFINITY), vb = va, ninf = va;
    for (; v + 8 <= V; v += 8) {
        __m256 x = _mm256_loadu_ps(l + v);
        __m256i m = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(mk + v)));
        __m256 keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(m, _mm256_setzero_si256()));
        va = _mm256_max_ps(va, x);
        vb = _mm256_max_ps(vb, _mm256_blendv_ps(ninf, x, keep));
    }
    float ta[8], tb[8];
    _mm256_storeu_ps(ta, va);
    _mm256_storeu_ps(tb, vb);
    for (int i = 0; i < 8; i++) { a = ta[i] > a ? ta[i] : a; b = tb[i] > b ? tb[i] : b; }
#endif
    for (; v < V; v++) {
        a = l[v] > a ? l[v] : a;
        if (mk[v] && l[v] > b) b = l[v];
    }
    *amx = a;
    *mx = b;
}

static float nucleus_threshold(float *buf, float *tmp, int n, double limit, int *tie_keep, int *n_equal) {
    double above = 0.0; /* mass of the values above the candidates a[0..n) */
    float *a = buf, *t = tmp;
    while (n > 0) {
        float x0 = a[0], x1 = a[n / 2], x2 = a[n - 1];
        float piv = fmaxf(fminf(x0, x1), fminf(fmaxf(x0, x1), x2));
        double mg = 0.0, me = 0.0;
        int ng = 0, ne = 0;
        for (int i = 0; i < n; i++) { /* branch-free: vectorised */
            float x = a[i];
            mg += x > piv ? x : 0.f;
            me += x == piv ? x : 0.f;
            ng += x > piv;
            ne += x == piv;
        }
        if (above + mg >= limit && ng > 0) { /* the boundary is above piv: keep searching there */
            int k = 0;
            for (int i = 0; i < n; i++) { t[k] = a[i]; k += a[i] > piv; }
            float *s = a; a = t; t = s; n = k;
            continue;
        }
        if (above + mg + me >= limit || ng + ne == n) { /* ... at piv: keep ties while below */
            int k = 0;
            while (k < ne && above + mg + (double)k * piv < limit) k++;
            *tie_keep = k > 0 ? k : 1;
            *n_equal = ne;
            return piv;
        }
        above += mg + me;
        int k = 0;
        for (int i = 0; i < n; i++) { t[k] = a[i]; k += a[i] < piv; }
        float *s = a; a = t; t = s; n = k;
    }
    *tie_keep = 1;
    *n_equal = 1;
    return 0.f;
}

/* tok[r] ~ softmax(logits[r] / temperature) over mask[r], nucleus top_p, driven by the uniform u[r];
 * logp[r] = log_softmax(logits[r])[tok] over the whole vocabulary (the model's own likelihood).
 * Temperature and top_p are per row: rows of different requests are sampled in one call.
 * Definition (mirrored by core.generate.sample_torch): the kept set is the nucleus above (all allowed
 * tokens when top_p >= 1); the token is the first kept one, in id order, at which the running kept mass
 * exceeds u · (kept mass). */
void shiren_sample(int b, int V, const float *logits, const uint8_t *mask, const double *temperatures,
                   const double *top_ps, const double *u, int64_t *tok, float *logp) {
#pragma omp parallel if (b >= 2) /* ~30 us a row: worth a second thread from two rows on */
    {
        float *e = malloc(sizeof(float) * V), *lt = malloc(sizeof(float) * V), *buf = malloc(sizeof(float) * V);
#pragma omp for schedule(static)
        for (int r = 0; r < b; r++) {
            const float *l = logits + (size_t)r * V;
            const uint8_t *mk = mask + (size_t)r * V;
            const double temperature = temperatures[r], top_p = top_ps[r];
            float amx, mx;
            row_max(l, mk, V, &amx, &mx);
            vexp(l, e, V, amx);
            float se = 0.f;
            for (int v = 0; v < V; v++) se += e[v];
            double lse = log((double)se) + amx;
            if (mx == -INFINITY) { /* nothing allowed (cannot happen after shiren_mask): the most likely token */
                int arg = 0;
                for (int v = 0; v < V; v++) if (l[v] == amx) { arg = v; break; }
                tok[r] = arg; logp[r] = (float)(l[arg] - lse);
                continue;
            }
            float it = (float)(1.0 / temperature);
            for (int v = 0; v < V; v++) lt[v] = l[v] * it;
            vexp(lt, e, V, mx * it);
            /* Branch-free passes (the mask is irregular: branches on it mispredict half the time). */
            double total = 0.0; /* sums in double, as sample_torch: the nucleus edge must agree */
            int n_allowed = 0;
            /* One loop per sum: so the compiler vectorises them (one loop mixing byte, float and double
             * sums stays scalar: ~10 us a row, a dependent add per token). */
            for (int v = 0; v < V; v++) e[v] = mk[v] ? e[v] : 0.f;
            for (int v = 0; v < V; v++) total += (double)e[v];
            for (int v = 0; v < V; v++) n_allowed += mk[v];
            float tau = 0.f;
            int ties = V;
            if (top_p < 1.0) {
                /* Tokens at or below eps cannot be in the nucleus: together they hold less than the
                 * (1 - top_p) tail, so the mass above them already passes top_p. Only the rest is searched. */
                float eps = (float)((1.0 - top_p) * total / n_allowed);
                int n = 0, v = 0, n_equal = 0;
#if defined(__AVX512F__)
                for (__m512 ev = _mm512_set1_ps(eps); v + 16 <= V; v += 16) {
                    __m512 x = _mm512_loadu_ps(e + v);
                    __mmask16 m = _mm512_cmp_ps_mask(x, ev, _CMP_GT_OQ);
                    _mm512_mask_compressstoreu_ps(buf + n, m, x);
                    n += __builtin_popcount(m);
                }
#endif
                for (; v < V; v++) { buf[n] = e[v]; n += e[v] > eps; }
                tau = nucleus_threshold(buf, lt, n, top_p * total, &ties, &n_equal);
                /* kept: p > tau, and the first `ties` tokens equal to tau (in id order) */
                if (ties >= n_equal) {
                    for (int w = 0; w < V; w++) e[w] = e[w] >= tau ? e[w] : 0.f;
                } else {
                    int seen = 0;
                    for (int w = 0; w < V; w++) {
                        float pv = e[w];
                        int eq = pv == tau, keep = pv > tau || (eq && seen < ties);
                        seen += eq;
                        e[w] = keep ? pv : 0.f;
                    }
                }
            }
            double kept = 0.0;
            for (int v = 0; v < V; v++) kept += e[v];
            /* The walk: skip whole blocks of 64 by their sums, then step inside the block. */
            double target = u[r] * kept, acc = 0.0;
            int chosen = -1, last = -1, v0 = 0;
            for (; v0 < V; v0 += 64) {
                int v1 = v0 + 64 < V ? v0 + 64 : V;
                double bs = 0.0;
                for (int v = v0; v < v1; v++) bs += e[v];
                if (acc + bs > target) break;
                acc += bs;
            }
            for (int v = v0; v < V && chosen < 0; v++) {
                if (e[v] <= 0.f) continue;
                last = v;
                acc += e[v];
                if (acc > target) chosen = v;
            }
            if (chosen < 0) { /* rounding: the last kept token */
                for (int v = V - 1; v >= 0; v--) if (e[v] > 0.f) { last = v; break; }
                chosen = last;
            }
            tok[r] = chosen;
            logp[r] = (float)(l[chosen] - lse);
        }
        free(e); free(lt); free(buf);
    }
}

/* Threads for the calling thread's next parallel regions (core/cpu_share.py picks the count from the
 * cores other processes leave free: a team whose second thread waits for a busy core stalls at every
 * barrier, worse than one thread). */
void shiren_set_threads(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n < 1 ? 1 : n);
#else
    (void)n;
#endif
}

int shiren_max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* The vector path this build runs: the AVX-512 kernels, or the portable loops as the compiler
 * vectorised them for this CPU (AVX2+FMA on CPUs without AVX-512). */
const char *shiren_isa(void) {
#if defined(__AVX512F__)
    return "avx512";
#elif defined(__AVX2__) && defined(__FMA__)
    return "avx2+fma";
#else
    return "portable";
#endif
}

