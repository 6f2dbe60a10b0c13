/*
 * host_kernels.c - plain-C int8 reference kernels of a RISC-V host (what generic C from plain TVM
 * runs: one loop nest per layer, no tiling, no SIMD), measured by benchmarks/host_model.py.
 *
 * int8 NHWC tensors (layouts of tvm_bridge/quant.py), int32 accumulation, requantization with the
 * helpers of tvm_bridge/c/match_target.h (TFLite MultiplyByQuantizedMultiplier; single rounding for
 * dense), zero points, clamp. Loop bounds are run-time values; index arithmetic is int32.
 *
 * The harness (main) runs every shape of HOST_SHAPES (host_shapes.h, written by the script) between
 * two reads of the retired-instruction counter and prints one line per shape:
 *     <kind> <index> <instructions> <checksum>
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "match_target.h"

static inline unsigned long rdinstret(void) {
    unsigned long v;
    __asm__ volatile("rdinstret %0" : "=r"(v));
    return v;
}

enum { K_CONV = 0, K_DEPTHWISE = 1, K_DENSE = 2, K_ADD = 3, K_AVG_POOL = 4, K_MAX_POOL = 5 };

typedef struct {
    int32_t kind;
    int32_t b, k, c, oy, ox, fy, fx, g; /* loop extents (mapper.Layer sizes) */
    int32_t sy, sx, pad_top, pad_left, iy, ix;
} shape_t;

#include "host_shapes.h" /* static const shape_t HOST_SHAPES[]; HOST_MAX_{IN,W,OUT,CH} */

typedef struct {
    int32_t in_zp, in2_zp, out_zp, act_min, act_max;
    const int32_t* bias;
    const int32_t* multiplier;
    const int32_t* shift;
    int32_t in1_multiplier, in1_shift, in2_multiplier, in2_shift, out_multiplier, out_shift;
} quant_t;

static inline int8_t clamp8(const quant_t* q, int32_t v) {
    if (v < q->act_min) v = q->act_min;
    if (v > q->act_max) v = q->act_max;
    return (int8_t)v;
}

static inline int8_t requant(const quant_t* q, int32_t acc, int32_t ch) {
    return clamp8(q, (int32_t)match_mbqm((int64_t)acc + q->bias[ch], q->multiplier[ch], q->shift[ch]) + q->out_zp);
}

/* conv2d (groups G, K and C per group): in [B][IY][IX][G*C], w [G*K][FY][FX][C], out [B][OY][OX][G*K] */
__attribute__((noinline)) void host_conv2d(const shape_t* s, const quant_t* q, const int8_t* in, const int8_t* w,
                                           int8_t* out) {
    const int32_t cin = s->g * s->c, cout = s->g * s->k;
    for (int32_t b = 0; b < s->b; b++)
        for (int32_t oy = 0; oy < s->oy; oy++)
            for (int32_t ox = 0; ox < s->ox; ox++)
                for (int32_t g = 0; g < s->g; g++)
                    for (int32_t k = 0; k < s->k; k++) {
                        const int32_t oc = g * s->k + k;
                        int32_t acc = 0;
                        for (int32_t fy = 0; fy < s->fy; fy++) {
                            const int32_t y = oy * s->sy + fy - s->pad_top;
                            if (y < 0 || y >= s->iy) continue;
                            for (int32_t fx = 0; fx < s->fx; fx++) {
                                const int32_t x = ox * s->sx + fx - s->pad_left;
                                if (x < 0 || x >= s->ix) continue;
                                const int8_t* pi = in + ((b * s->iy + y) * s->ix + x) * cin + g * s->c;
                                const int8_t* pw = w + ((oc * s->fy + fy) * s->fx + fx) * s->c;
                                for (int32_t c = 0; c < s->c; c++) acc += (pi[c] - q->in_zp) * pw[c];
                            }
                        }
                        out[((b * s->oy + oy) * s->ox + ox) * cout + oc] = requant(q, acc, oc);
                    }
}

/* depthwise (G channels, multiplier K): in [B][IY][IX][G], w [FY][FX][G*K], out [B][OY][OX][G*K] */
__attribute__((noinline)) void host_depthwise(const shape_t* s, const quant_t* q, const int8_t* in,
                                              const int8_t* w, int8_t* out) {
    const int32_t cout = s->g * s->k;
    for (int32_t b = 0; b < s->b; b++)
        for (int32_t oy = 0; oy < s->oy; oy++)
            for (int32_t ox = 0; ox < s->ox; ox++)
                for (int32_t g = 0; g < s->g; g++)
                    for (int32_t m = 0; m < s->k; m++) {
                        const int32_t oc = g * s->k + m;
                        int32_t acc = 0;
                        for (int32_t fy = 0; fy < s->fy; fy++) {
                            const int32_t y = oy * s->sy + fy - s->pad_top;
                            if (y < 0 || y >= s->iy) continue;
                            for (int32_t fx = 0; fx < s->fx; fx++) {
                                const int32_t x = ox * s->sx + fx - s->pad_left;
                                if (x < 0 || x >= s->ix) continue;
                                acc += (in[((b * s->iy + y) * s->ix + x) * s->g + g] - q->in_zp)
                                       * w[(fy * s->fx + fx) * cout + oc];
                            }
                        }
                        out[((b * s->oy + oy) * s->ox + ox) * cout + oc] = requant(q, acc, oc);
                    }
}

/* dense: in [B][C], w [K][C], out [B][K]; single-rounding requantization (LiteRT FULLY_CONNECTED) */
__attribute__((noinline)) void host_dense(const shape_t* s, const quant_t* q, const int8_t* in, const int8_t* w,
                                          int8_t* out) {
    for (int32_t b = 0; b < s->b; b++)
        for (int32_t k = 0; k < s->k; k++) {
            const int8_t* pi = in + b * s->c;
            const int8_t* pw = w + k * s->c;
            int32_t acc = 0;
            for (int32_t c = 0; c < s->c; c++) acc += (pi[c] - q->in_zp) * pw[c];
            out[b * s->k + k] = clamp8(q, (int32_t)match_mbqm_single((int64_t)acc + q->bias[k], q->multiplier[k],
                                                                     q->shift[k]) + q->out_zp);
        }
}

/* add: two [B][OY][OX][G] inputs rescaled to a common scale (TFLite int8 ADD) */
__attribute__((noinline)) void host_add(const shape_t* s, const quant_t* q, const int8_t* in, const int8_t* in2,
                                        int8_t* out) {
    const int32_t n = s->b * s->oy * s->ox * s->g;
    for (int32_t i = 0; i < n; i++) {
        const int64_t a1 = (int64_t)(in[i] - q->in_zp) * (1 << 20);
        const int64_t a2 = (int64_t)(in2[i] - q->in2_zp) * (1 << 20);
        const int64_t sum = match_mbqm(a1, q->in1_multiplier, q->in1_shift) + match_mbqm(a2, q->in2_multiplier, q->in2_shift);
        out[i] = clamp8(q, (int32_t)match_mbqm(sum, q->out_multiplier, q->out_shift) + q->out_zp);
    }
}

/* average / max pooling over windows clipped to the input: [B][IY][IX][G] -> [B][OY][OX][G] */
__attribute__((noinline)) void host_pool(const shape_t* s, const quant_t* q, const int8_t* in, int8_t* out,
                                         int32_t is_max) {
    for (int32_t b = 0; b < s->b; b++)
        for (int32_t oy = 0; oy < s->oy; oy++)
            for (int32_t ox = 0; ox < s->ox; ox++) {
                const int32_t y0 = oy * s->sy - s->pad_top, x0 = ox * s->sx - s->pad_left;
                const int32_t ya = y0 < 0 ? 0 : y0, xa = x0 < 0 ? 0 : x0;
                const int32_t yb = y0 + s->fy < s->iy ? y0 + s->fy : s->iy;
                const int32_t xb = x0 + s->fx < s->ix ? x0 + s->fx : s->ix;
                const int32_t count = (yb - ya) * (xb - xa);
                for (int32_t g = 0; g < s->g; g++) {
                    int32_t acc = is_max ? -128 : 0;
                    for (int32_t y = ya; y < yb; y++)
                        for (int32_t x = xa; x < xb; x++) {
                            const int32_t v = in[((b * s->iy + y) * s->ix + x) * s->g + g];
                            if (is_max) acc = v > acc ? v : acc;
                            else acc += v;
                        }
                    if (!is_max) acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    out[((b * s->oy + oy) * s->ox + ox) * s->g + g] = clamp8(q, acc);
                }
            }
}

static int8_t g_in[HOST_MAX_IN], g_in2[HOST_MAX_IN], g_w[HOST_MAX_W], g_out[HOST_MAX_OUT];
static int32_t g_bias[HOST_MAX_CH], g_mult[HOST_MAX_CH], g_shift[HOST_MAX_CH];

static uint32_t lcg_state = 12345u;
static int8_t next_i8(void) {
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return (int8_t)(lcg_state >> 24);
}

int main(void) {
    static const char* names[] = {"conv2d", "depthwise", "dense", "add", "avg_pool", "max_pool"};
    const int32_t n_shapes = (int32_t)(sizeof HOST_SHAPES / sizeof HOST_SHAPES[0]);
    for (int32_t i = 0; i < HOST_MAX_IN; i++) g_in[i] = next_i8(), g_in2[i] = next_i8();
    for (int32_t i = 0; i < HOST_MAX_W; i++) g_w[i] = next_i8();
    for (int32_t i = 0; i < HOST_MAX_CH; i++) {
        g_bias[i] = (int32_t)next_i8() * 64;
        g_mult[i] = 1518500250 + (int32_t)next_i8() * 4096; /* ~0.7 in Q31 */
        g_shift[i] = -7 - (i % 3);
    }
    const quant_t q = {3, -5, -2, -128, 127, g_bias, g_mult, g_shift,
                       1073741824, -1, 1288490189, -1, 1073741824, -19};
    for (int32_t i = 0; i < n_shapes; i++) {
        const shape_t* s = &HOST_SHAPES[i];
        unsigned long start = 0, stop = 0;
        int32_t outputs = s->b * s->oy * s->ox * s->g * s->k;
        memset(g_out, 0, sizeof g_out);
        switch (s->kind) {
        case K_CONV: start = rdinstret(); host_conv2d(s, &q, g_in, g_w, g_out); stop = rdinstret(); break;
        case K_DEPTHWISE: start = rdinstret(); host_depthwise(s, &q, g_in, g_w, g_out); stop = rdinstret(); break;
        case K_DENSE: start = rdinstret(); host_dense(s, &q, g_in, g_w, g_out); stop = rdinstret(); break;
        case K_ADD: start = rdinstret(); host_add(s, &q, g_in, g_in2, g_out); stop = rdinstret(); break;
        case K_AVG_POOL: start = rdinstret(); host_pool(s, &q, g_in, g_out, 0); stop = rdinstret(); break;
        default: start = rdinstret(); host_pool(s, &q, g_in, g_out, 1); stop = rdinstret(); break;
        }
        uint32_t checksum = 0;
        for (int32_t j = 0; j < outputs; j++) checksum = checksum * 31u + (uint8_t)g_out[j];
        printf("%s %ld %lu %lu\n", names[s->kind], (long)i, stop - start, (unsigned long)checksum);
    }
    return 0;
}
