#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
// matmul.comp on tensor cores (VK_KHR_cooperative_matrix): the same modes and dequantization
// (matmul_tile.glsl), with the weight and activation tiles staged in shared memory as float16
// and multiplied as 16×16×16 float16 fragments accumulating in float32.
// A workgroup is 8 subgroups of 32 invocations and computes BM = 128 weight rows × BN token
// rows, BN = 64, 128 or 32 (specialization constant 1, FLAGS, bits 0-1: TILE 0, 1 or 2).
// Subgroup s owns weight rows 32·(s % 4) .. +31 (2 fragments) × token slots
// (BN/2)·(s / 4) .. +BN/2-1 (BN/32 fragments, at least one), and skips the fragments whose 16
// slots are all empty (grouped experts with few tokens).
// The shared dimension advances 32 columns (one chunk) a step through two staging buffers
// (float16, stored 4 at a time): while the fragments of step i are multiplied out of one, the
// loads of step i+2 are in flight and step i+1 (loaded during step i-1) is decoded into the
// other, so a step needs one barrier (FLAGS bit 2, AHEAD1: the loads only one step ahead, one
// register set instead of two). Each invocation dequantizes 16 consecutive weights of one
// row (Q4_K: two 16-byte loads where the host says the weight rows are aligned, `pad` bit 2;
// Q4_K and Q6_K decoded from the raw words only when stashed) and converts 8 or 16 activations
// of one slot (16-byte loads where the x rows are aligned, `pad` bit 0). Finished fragments go
// straight to y where their 16 × 16 outputs are all in range and aligned (modes 0 and 3, `pad`
// bit 1), otherwise through a per-subgroup scratch in shared memory. The accumulators are named
// variables, not an array: an array of fragments was kept in local memory on the H100's driver.
// The host selects this pipeline only where the device lists that fragment shape, subgroups of
// 32 and 48 KiB of shared memory (TILE 1 uses all of it).
// Compiled by a glslang that knows GL_KHR_cooperative_matrix (ci/glslang-coopmat.sh).
// FLAGS bit 3, WIDE: two chunks (64 columns) a step through one staging buffer of 64-column
// rows: the loads of step i+1 are in flight over the 16 products of step i, then a barrier, the
// stash of step i+1 and a second barrier (the host sets it only where ncols % 64 == 0).
// FLAGS bits 4-7, EXP: measurement switches (bench's grouped-product probe only; the results
// are wrong): 1 no products, 2 codes to floats without scales, 4 no x loads, 8 no weight loads.
// FLAGS bit 8, X16: x is float16, two to a word (x_off, x_ld and the columns count halves; the
// host converted it, as stash would round it), staged without conversion.
// FLAGS bit 9, SWIGLU: y = SiLU(W·x) * (U·x), U's slabs at w2_offset (same type and layout as
// W's): a workgroup computes BM / 2 output rows, its tile rows 0..63 being W's and 64..127 U's,
// and subgroup s multiplies W's rows 16·(s % 4) .. +15 and U's same rows, so that the two
// accumulators of a fragment hold the gate and up of the same outputs (the invocation's elements
// of two accumulators of one shape are the same positions) and combine in registers.
// FLAGS bit 10, NOVEC (GLM_VK_CM_VEC_OUT=0, a measurement): fragments through the scratch leave
// as one float a lane and row, not as 16-byte stores.
// Tiles of 64 or 32 token rows keep their bookkeeping in shared memory (SROWS; 128-row tiles
// use all 48 KiB, and FLAGS bit 11, GLM_VK_CM_SROWS=0, turns it off to measure it): grouped
// modes copy tiles[0..E] there with one load before the search for the workgroup's expert
// (instead of a dependent load a step of it), and each slot's y row is looked up once at the
// start for the x loads and the epilogue (which otherwise looked its rows up again, a
// dependent load before each fragment's stores).
// FLAGS bit 13, H2 (Q6_K and Q4_K; the host sets it for grouped Q6_K products and for every Q4_K
// one; GLM_VK_H2_DENSE=0 leaves Q4_K out, GLM_VK_H2=0 turns it off): the codes decoded in float16 pairs
// (stash_h2), both operands' columns staged in the order (0, 2, 1, 3) within each group of four.
layout(constant_id = 1) const uint FLAGS = 0;
const uint TILE = FLAGS & 3u, AHEAD1 = (FLAGS >> 2) & 1u, WIDE = (FLAGS >> 3) & 1u, EXP = (FLAGS >> 4) & 15u;
const uint X16 = (FLAGS >> 8) & 1u, SWIGLU = (FLAGS >> 9) & 1u, NOVEC = (FLAGS >> 10) & 1u;
// FLAGS bit 12, NOBAR: a measurement switch (the grouped-product probe's bit 16; results wrong):
// no barriers in the main loop.
const uint NOBAR = (FLAGS >> 12) & 1u;
const bool H2F = (FLAGS & 8192u) != 0u;
const uint SRN = TILE == 1u ? 0u : 1u - ((FLAGS >> 11) & 1u); // SROWS as 0 / 1
const bool SROWS = SRN != 0u;
#define BM 128u
const uint BMO = SWIGLU != 0u ? BM / 2u : BM; // output rows a workgroup
const uint BN = TILE == 1u ? 128u : TILE == 2u ? 32u : 64u;
#define WG_SIZE 256u
// float16 row stride of the staging tiles: a step's columns + 8 (no bank conflicts)
const uint LDH = WIDE != 0u ? 72u : 40u;
const uint KSTEP = WIDE != 0u ? 64u : 32u; // columns a step
layout(local_size_x = 256) in;

#define MAX_EXP_SHARED 128u // experts whose tiles[] fit gtiles
shared int gtiles[SRN * MAX_EXP_SHARED + 1u]; // SROWS, grouped modes: tiles[0 .. E]
shared int srow[SRN * (BN - 1u) + 1u];         // SROWS: slot s's y row, -1 when empty
bool tiles_shared;
#define TILES_AT(i) (tiles_shared ? gtiles[i] : g[p.g_off + 2u * p.n_exp + (i)])

#include "../matmul_tile.glsl"

// slot_rows(), from srow where SROWS
void slot_rows_s(uint s, out int xr, out int yr)
{
    if (SROWS) {
        yr = srow[s];
        xr = yr >= 0 && p.mode == 1u ? yr / int(p.k) : yr;
    } else
        slot_rows(s, xr, yr);
}

layout(std430, binding = 0) readonly buffer W4 { uvec4 w4[]; }; // weights, 16 bytes at a time
layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; }; // x, 16 bytes at a time
layout(std430, binding = 1) readonly buffer XH { uint xh[]; }; // X16: x's halves in pairs
layout(std430, binding = 1) readonly buffer XH4 { uvec4 xh4[]; }; // X16: 8 halves at a time
layout(std430, binding = 2) writeonly buffer Y4 { vec4 y4[]; };   // y, 16 bytes at a time

// The staging tiles: ws as float16 octets in uvec4s (16-byte stores; LDH / 8 a row), xs as
// float16 quadruples (8-byte stores; LDH / 4 a row: 32-row tiles stage 4 halves an invocation).
// Two buffers of 40-column rows, or (WIDE) one of 72-column rows, which fits in the same space.
// ws's last octet (the last row's padding) is never used and not declared: TILE 1 fills the
// 48 KiB with it, and the SROWS arrays below take one int each there.
shared uvec4 ws[2u * BM * 40u / 8u - 1u]; // ws[(b·BM·LDH + m·LDH + k) / 8] ∋ W[m0 + m][KSTEP·step + k]
shared f16vec4 xs[2u * BN * 40u / 4u]; // xs[(b·BN·LDH + s·LDH + k) / 4] ∋ x[slot s][KSTEP·step + k]
shared float cs[8u * 256u];       // a 16 × 16 float fragment per subgroup, on the way out

#define WT (BN / 2u)        // token slots per subgroup
#define XPT (BN / 8u)       // activations an invocation converts per step (4, 8 or 16)
#define XTPS (32u / XPT)    // invocations per slot

// Per-invocation loading assignments, fixed for the whole shared dimension.
uint w_row;   // the weight row (within the tile) whose 16 elements 16·w_half .. +15 it dequantizes
uint w_half;
uint w_bytes; // byte offset of that row (a clamped row past nrows; its values are then zeros)
bool w_valid;
uint x_slot, x_col; // the slot and first column (within a chunk) of its activations
int x_row;          // that slot's x row, -1 when empty

// A step's weights and activations between fetch and stash. Q4_K and Q6_K keep the raw words
// (the loads stay in flight over the products in between and are decoded in stash): Q4_K the
// block's first 16 bytes (w0) and its 16 code bytes (w1) of sub-block sub; Q6_K 16 bytes of ql
// (w0) and of qh (w1), the words holding the 8-bit scale (sc) and d (dd) with their shifts
// (shift: scale shift | d shift << 8) and sub. Other types are decoded in fetch (wv).
struct Raw {
    uvec4 w0, w1;
    uint sc, dd, shift, sub;
    float wv[16];
    vec4 xv[4];
    uvec4 xq[2]; // X16: XPT halves, two to a word
};

// The 16 bytes at byte offset off (any alignment): aligned word loads, no branch between them.
uvec4 rd16b(uint off)
{
    uvec2 a = rd8b(off), b = rd8b(off + 8u);
    return uvec4(a, b);
}

void fetch_x(uint c, inout Raw r);

void fetch(uint c, out Raw r)
{
    if ((EXP & 8u) != 0u) { // measurement: no weight loads
        r.w0 = uvec4(c, c + 1u, w_row, w_half);
        r.w1 = uvec4(c ^ w_row, c + w_row, c * 3u, w_half + c);
        r.sc = c, r.dd = c, r.shift = 0u, r.sub = c % 8u;
        [[unroll]] for (uint j = 0u; j < 16u; j++)
            r.wv[j] = float(c + j);
    } else if (TYPE == T_Q4_K) {
        uint b = w_bytes + (c / 8u) * 144u;
        uint q = b + 16u + 32u * ((c % 8u) / 2u) + 16u * w_half;
        r.sub = c % 8u;
        if ((p.pad & 4u) != 0u) { // 16-byte aligned weights
            r.w0 = w4[b >> 4];
            r.w1 = w4[q >> 4];
        } else {
            r.w0 = uvec4(w[b >> 2], w[(b >> 2) + 1u], w[(b >> 2) + 2u], w[(b >> 2) + 3u]);
            r.w1 = uvec4(w[q >> 2], w[(q >> 2) + 1u], w[(q >> 2) + 2u], w[(q >> 2) + 3u]);
        }
    } else if (TYPE == T_Q6_K) {
        uint b = w_bytes + (c / 8u) * 210u, sub = c % 8u, h = sub / 4u, kk = sub % 4u;
        r.w0 = rd16b(b + 64u * h + (kk % 2u) * 32u + 16u * w_half);
        r.w1 = rd16b(b + 128u + 32u * h + 16u * w_half);
        uint so = b + 192u + 2u * sub + w_half, dof = b + 208u;
        r.sc = w[so >> 2];
        r.dd = w[dof >> 2];
        r.shift = 8u * (so & 3u) | (8u * (dof & 3u)) << 8;
        r.sub = sub;
    } else {
        float t[8];
        deq8(w_bytes, c, 2u * w_half, t);
        [[unroll]] for (uint j = 0u; j < 8u; j++)
            r.wv[j] = t[j];
        deq8(w_bytes, c, 2u * w_half + 1u, t);
        [[unroll]] for (uint j = 0u; j < 8u; j++)
            r.wv[8u + j] = t[j];
    }
    fetch_x(c, r);
}

// The WIDE step's two chunks c (even) and c + 1. Q4_K's second chunk is the other nibble of the
// same 32 code bytes under the same block header, so it loads no weights of its own.
void fetch_pair(uint c, out Raw a, out Raw b)
{
    if (TYPE == T_Q4_K && (EXP & 8u) == 0u) {
        fetch(c, a);
        b = a;
        b.sub = (c + 1u) % 8u;
        fetch_x(c + 1u, b);
    } else {
        fetch(c, a);
        fetch(c + 1u, b);
    }
}

void fetch_x(uint c, inout Raw r)
{
    [[unroll]] for (uint v = 0u; v < 4u; v++)
        r.xv[v] = vec4(0.0);
    r.xq[0] = r.xq[1] = uvec4(0u);
    if (X16 != 0u) {
        if (x_row >= 0 && (EXP & 4u) != 0u) {
            r.xq[0] = uvec4(c, uint(x_row), 1u, 2u);
            r.xq[1] = r.xq[0] + 3u;
        } else if (x_row >= 0) {
            uint o = (x_base + uint(x_row) * p.x_ld + 32u * c + x_col) / 2u; // words
            if (XPT >= 8u && (p.pad & 1u) != 0u) {
                [[unroll]] for (uint v = 0u; v < 2u; v++)
                    if (v < XPT / 8u)
                        r.xq[v] = xh4[o / 4u + v];
            } else {
                [[unroll]] for (uint v = 0u; v < 8u; v++)
                    if (v < XPT / 2u)
                        r.xq[v / 4u][v % 4u] = xh[o + v];
            }
        }
        return;
    }
    if (x_row >= 0 && (EXP & 4u) != 0u) { // measurement: no x loads
        [[unroll]] for (uint v = 0u; v < 4u; v++)
            r.xv[v] = vec4(float(c), float(x_row), float(v), 1.0);
    } else if (x_row >= 0) {
        uint o = x_base + uint(x_row) * p.x_ld + 32u * c + x_col;
        if ((p.pad & 1u) != 0u) {
            [[unroll]] for (uint v = 0u; v < 4u; v++)
                if (v < XPT / 4u)
                    r.xv[v] = x4[o / 4u + v];
        } else {
            [[unroll]] for (uint v = 0u; v < 4u; v++)
                if (v < XPT / 4u)
                    r.xv[v] = vec4(x[o + 4u * v], x[o + 4u * v + 1u], x[o + 4u * v + 2u], x[o + 4u * v + 3u]);
        }
    }
}

// stash for H2: a code word's 4 codes as two float16 pairs, bytes 0 and 2 then 1 and 3, each
// ORed into float16's mantissa and centred by one exact subtraction. Q6_K (codes q + 32, 6 bits):
// 1056 + (q − 32) less 1056, times d rounded to float16. Q4_K (4 bits): q − 8, then
// fma(q − 8, D, −C) with D = d and C = m − 8·d rounded to float16. x is permuted the same way.
void stash_h2(uint b, uint col, Raw r)
{
    float d = 1.0, m = 8.0;
    uint cw[4];
    if (TYPE == T_Q6_K) {
        uint kk = r.sub % 4u, sh = 4u * (kk / 2u);
        if ((EXP & 2u) == 0u)
            d = unpackHalf2x16((r.dd >> (r.shift >> 8)) & 0xffffu).x * float(sx8((r.sc >> (r.shift & 255u)) & 0xffu));
        m = 8.0 * d;
        [[unroll]] for (uint j = 0u; j < 4u; j++)
            cw[j] = ((r.w0[j] >> sh) & 0x0F0F0F0Fu) | (((r.w1[j] >> (2u * kk)) & 0x03030303u) << 4);
    } else {
        if ((EXP & 2u) == 0u)
            k4_dm(r.w0, r.sub, d, m);
        uint sh = 4u * (r.sub % 2u);
        [[unroll]] for (uint j = 0u; j < 4u; j++)
            cw[j] = (r.w1[j] >> sh) & 0x0F0F0F0Fu;
    }
    f16vec2 D = f16vec2(float16_t(d)), C = f16vec2(-float16_t(m - 8.0 * d));
    const f16vec2 K = f16vec2(TYPE == T_Q6_K ? 1056.0 : 1032.0);
    const uint OR = 0x64006400u;
    if (!w_valid) { // a row past nrows stages zeros
        D = f16vec2(0.0);
        C = f16vec2(0.0);
    }
    uint wo = (b * BM * LDH + w_row * LDH + col + 16u * w_half) / 8u;
    uvec2 hw[4];
    [[unroll]] for (uint j = 0u; j < 4u; j++) {
        uint c = cw[j];
        f16vec2 e = unpackFloat2x16((c & 0x00FF00FFu) | OR) - K, o = unpackFloat2x16(((c >> 8) & 0x00FF00FFu) | OR) - K;
        hw[j] = TYPE == T_Q6_K ? uvec2(packFloat2x16(e * D), packFloat2x16(o * D))
                               : uvec2(packFloat2x16(fma(e, D, C)), packFloat2x16(fma(o, D, C)));
    }
    ws[wo] = uvec4(hw[0], hw[1]);
    ws[wo + 1u] = uvec4(hw[2], hw[3]);
    uint xo = (b * BN * LDH + x_slot * LDH + col + x_col) / 4u;
    [[unroll]] for (uint j = 0u; j < 4u; j++)
        if (j < XPT / 4u) {
            if (X16 != 0u) {
                f16vec2 a = unpackFloat2x16(r.xq[j / 2u][2u * (j % 2u)]);
                f16vec2 c = unpackFloat2x16(r.xq[j / 2u][2u * (j % 2u) + 1u]);
                xs[xo + j] = f16vec4(a.x, c.x, a.y, c.y);
            } else {
                xs[xo + j] = f16vec4(r.xv[j].xzyw);
            }
        }
}

// Decodes a fetched chunk into staging buffer b at column col (0, or 32 for a WIDE step's
// second chunk).
void stash(uint b, uint col, Raw r)
{
    if (H2F && (TYPE == T_Q6_K || TYPE == T_Q4_K)) {
        stash_h2(b, col, r);
        return;
    }
    float v[16];
    if ((EXP & 2u) != 0u) { // measurement: the codes as floats, no scales
        [[unroll]] for (uint j = 0u; j < 16u; j++)
            v[j] = float((r.w1[j / 4u] >> (8u * (j % 4u))) & 15u);
    } else if (TYPE == T_Q4_K) {
        float d, m;
        k4_dm(r.w0, r.sub, d, m);
        uint sh = 4u * (r.sub % 2u);
        [[unroll]] for (uint j = 0u; j < 16u; j++)
            v[j] = d * float((r.w1[j / 4u] >> (8u * (j % 4u) + sh)) & 15u) - m;
    } else if (TYPE == T_Q6_K) {
        uint kk = r.sub % 4u;
        float d = unpackHalf2x16((r.dd >> (r.shift >> 8)) & 0xffffu).x * float(sx8((r.sc >> (r.shift & 255u)) & 0xffu));
        float t[8];
        q6_dec8(r.w0.xy, r.w1.xy, 4u * (kk / 2u), kk, d, t);
        [[unroll]] for (uint j = 0u; j < 8u; j++)
            v[j] = t[j];
        q6_dec8(r.w0.zw, r.w1.zw, 4u * (kk / 2u), kk, d, t);
        [[unroll]] for (uint j = 0u; j < 8u; j++)
            v[8u + j] = t[j];
    } else {
        [[unroll]] for (uint j = 0u; j < 16u; j++)
            v[j] = r.wv[j];
    }
    uint wo = (b * BM * LDH + w_row * LDH + col + 16u * w_half) / 8u;
    uint hw[8];
    [[unroll]] for (uint j = 0u; j < 8u; j++)
        hw[j] = w_valid ? packFloat2x16(f16vec2(v[2u * j], v[2u * j + 1u])) : 0u;
    ws[wo] = uvec4(hw[0], hw[1], hw[2], hw[3]);
    ws[wo + 1u] = uvec4(hw[4], hw[5], hw[6], hw[7]);
    uint xo = (b * BN * LDH + x_slot * LDH + col + x_col) / 4u;
    [[unroll]] for (uint j = 0u; j < 4u; j++)
        if (j < XPT / 4u) {
            if (X16 != 0u)
                xs[xo + j] = f16vec4(unpackFloat2x16(r.xq[j / 2u][2u * (j % 2u)]),
                                     unpackFloat2x16(r.xq[j / 2u][2u * (j % 2u) + 1u]));
            else
                xs[xo + j] = f16vec4(r.xv[j]);
        }
}

#define ACC coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>

// Writes a fragment of the subgroup's row i: token slots sn + 16i .. +15 × output rows
// r0 .. +15, straight to y where all are in range and aligned (direct_ok), else through the
// subgroup's scratch in shared memory.
void put_frag(ACC a, uint i, uint sn, uint r0, uint nfrag, bool direct_ok)
{
    uint s0 = sn + 16u * i, sg = gl_SubgroupID;
    if (i >= WT / 16u || i >= nfrag || r0 >= p.nrows)
        return;
    if (direct_ok && tile_n0 + s0 + 16u <= tile_count && r0 + 16u <= p.nrows) {
        coopMatStore(a, y, y_base + (tile_n0 + s0) * p.y_ld + r0, p.y_ld, gl_CooperativeMatrixLayoutRowMajor);
        return;
    }
    if (NOVEC == 0u && (p.pad & 2u) != 0u && r0 + 16u <= p.nrows) {
        // aligned y rows, 16 columns in range: lane l writes columns 4 (l % 4) .. +3 of rows l / 4
        // and l / 4 + 8 as two 16-byte stores (their y rows looked up first, as below)
        int yv[2];
        [[unroll]] for (uint i = 0u; i < 2u; i++) {
            int xr;
            slot_rows_s(s0 + gl_SubgroupInvocationID / 4u + 8u * i, xr, yv[i]);
        }
        coopMatStore(a, cs, sg * 256u, 16u, gl_CooperativeMatrixLayoutRowMajor);
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        uint c4 = gl_SubgroupInvocationID % 4u;
        [[unroll]] for (uint i = 0u; i < 2u; i++) {
            uint o = sg * 256u + (gl_SubgroupInvocationID / 4u + 8u * i) * 16u + 4u * c4;
            if (yv[i] >= 0)
                y4[(y_base + uint(yv[i]) * p.y_ld + r0) / 4u + c4] = vec4(cs[o], cs[o + 1u], cs[o + 2u], cs[o + 3u]);
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        return;
    }
    // lane l writes column l % 16 of rows l / 16 + 2i: their y rows are looked up first, so the
    // lookups are in flight over the store to the scratch
    int yr[8];
    [[unroll]] for (uint i = 0u; i < 8u; i++) {
        int xr;
        slot_rows_s(s0 + gl_SubgroupInvocationID / 16u + 2u * i, xr, yr[i]);
    }
    coopMatStore(a, cs, sg * 256u, 16u, gl_CooperativeMatrixLayoutRowMajor);
    subgroupMemoryBarrierShared();
    subgroupBarrier();
    uint m = r0 + gl_SubgroupInvocationID % 16u;
    [[unroll]] for (uint i = 0u; i < 8u; i++)
        if (yr[i] >= 0 && m < p.nrows)
            y[y_base + uint(yr[i]) * p.y_ld + m] = cs[sg * 256u + gl_SubgroupInvocationID + 32u * i];
    subgroupMemoryBarrierShared();
    subgroupBarrier();
}

// SiLU(g) * u element by element (as eltwise.comp's SwiGLU): the invocation's elements of two
// accumulators of one shape sit at the same positions.
ACC swiglu(ACC g, ACC u)
{
    ACC h = u;
    for (int e = 0; e < h.length(); e++)
        h[e] = (g[e] / (1.0 + exp(-g[e]))) * u[e];
    return h;
}

void main()
{
    uint tid = gl_LocalInvocationID.x, sg = gl_SubgroupID;
    tiles_shared = SROWS && (p.mode == 1u || p.mode == 2u) && p.n_exp <= MAX_EXP_SHARED;
    if (tiles_shared) {
        if (tid <= p.n_exp)
            gtiles[tid] = g[p.g_off + 2u * p.n_exp + tid];
        barrier();
    }
    uint wbase;
    if (!tile_rows(wbase))
        return;
    if (SROWS) {
        if (tid < BN) {
            int xr, yr;
            slot_rows(tid, xr, yr);
            srow[tid] = yr;
        }
        barrier();
    }
    uint m0 = gl_WorkGroupID.x * BMO;
    w_row = tid / 2u;
    w_half = tid % 2u;
    // SWIGLU: tile rows 64.. are U's rows (its slab w2_offset - w_offset further on, modulo 2^32)
    uint orow = m0 + (SWIGLU != 0u ? w_row % 64u : w_row);
    if (SWIGLU != 0u && w_row >= 64u)
        wbase += p.w2_offset - p.w_offset;
    w_valid = orow < p.nrows;
    w_bytes = wbase + min(orow, p.nrows - 1u) * p.row_bytes;
    x_slot = tid / XTPS;
    x_col = XPT * (tid % XTPS);
    int yr_unused;
    slot_rows_s(x_slot, x_row, yr_unused);

    uint sm = 32u * (sg % 4u), sn = WT * (sg / 4u);
    // the tile rows of the subgroup's two weight fragments
    uint smb0 = SWIGLU != 0u ? 16u * (sg % 4u) : sm, smb1 = SWIGLU != 0u ? 64u + 16u * (sg % 4u) : sm + 16u;
    // fragments of this subgroup with at least one filled slot (slots fill from the front)
    int left = int(tile_count) - int(tile_n0 + sn);
    uint nfrag = uint(clamp((left + 15) / 16, 0, int(WT / 16u)));
    ACC a00 = ACC(0.0), a01 = ACC(0.0), a10 = ACC(0.0), a11 = ACC(0.0);
    ACC a20 = ACC(0.0), a21 = ACC(0.0), a30 = ACC(0.0), a31 = ACC(0.0);

    // Step st multiplies out of staging buffer st % 2 while the loads of step st + 2 are in
    // flight and step st + 1 (loaded a step earlier) is decoded into the other buffer; two
    // register sets (ra: even steps, rb: odd) alternate, so the loop goes two steps a turn.
#define PRODUCTS(B)                                                                                               \
    if (nfrag > 0u && (EXP & 1u) == 0u) {                                                                         \
        [[unroll]] for (uint kk = 0u; kk < KSTEP; kk += 16u) {                                                    \
            /* B[k][m] = W[m][k]: column-major */                                                                 \
            coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB> bf0, bf1;                                \
            coopMatLoad(bf0, ws, (B * BM * LDH + smb0 * LDH + kk) / 8u, LDH / 8u, gl_CooperativeMatrixLayoutColumnMajor); \
            coopMatLoad(bf1, ws, (B * BM * LDH + smb1 * LDH + kk) / 8u, LDH / 8u,                                \
                        gl_CooperativeMatrixLayoutColumnMajor);                                                   \
            FRAG_ROW(B, 0u, a00, a01)                                                                             \
            FRAG_ROW(B, 1u, a10, a11)                                                                             \
            FRAG_ROW(B, 2u, a20, a21)                                                                             \
            FRAG_ROW(B, 3u, a30, a31)                                                                             \
        }                                                                                                         \
    }
#define FRAG_ROW(B, I, A0, A1)                                                                                    \
    if (I < WT / 16u && I < nfrag) {                                                                              \
        coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA> af;                                           \
        coopMatLoad(af, xs, (B * BN * LDH + (sn + 16u * I) * LDH + kk) / 4u, LDH / 4u,                           \
                    gl_CooperativeMatrixLayoutRowMajor);                                                          \
        A0 = coopMatMulAdd(af, bf0, A0);                                                                          \
        A1 = coopMatMulAdd(af, bf1, A1);                                                                          \
    }
#define LOOP_BARRIER() if (NOBAR == 0u) barrier()
    uint nsteps = p.ncols / 32u;
    Raw ra, rb;
    if (WIDE != 0u) { // step st multiplies chunks 2st, 2st + 1 while chunks 2st + 2, 2st + 3 load
        uint nw = nsteps / 2u;
        fetch_pair(0u, ra, rb);
        stash(0u, 0u, ra);
        stash(0u, 32u, rb);
        LOOP_BARRIER();
        for (uint st = 0u; st < nw; st++) {
            if (st + 1u < nw)
                fetch_pair(2u * st + 2u, ra, rb);
            PRODUCTS(0u)
            LOOP_BARRIER();
            if (st + 1u < nw) {
                stash(0u, 0u, ra);
                stash(0u, 32u, rb);
            }
            LOOP_BARRIER();
        }
        nsteps = 0u; // the loops below are skipped
    }
    if (nsteps > 0u)
        fetch(0u, ra);
    if (nsteps > 0u && AHEAD1 != 0u) { // step st multiplies out of buffer st % 2 while step st + 1 loads
        stash(0u, 0u, ra);
        LOOP_BARRIER();
        for (uint st = 0u; st < nsteps; st++) {
            uint b = st % 2u;
            if (st + 1u < nsteps)
                fetch(st + 1u, ra);
            PRODUCTS(b)
            if (st + 1u < nsteps)
                stash(1u - b, 0u, ra);
            LOOP_BARRIER();
        }
        nsteps = 0u; // the loop below is skipped
    } else if (nsteps > 0u) {
        if (nsteps > 1u)
            fetch(1u, rb);
        stash(0u, 0u, ra);
        LOOP_BARRIER();
    }
    for (uint st = 0u; st < nsteps; st += 2u) {
        if (st + 2u < nsteps)
            fetch(st + 2u, ra);
        PRODUCTS(0u)
        if (st + 1u < nsteps)
            stash(1u, 0u, rb);
        LOOP_BARRIER();
        if (st + 1u >= nsteps)
            break;
        if (st + 3u < nsteps)
            fetch(st + 3u, rb);
        PRODUCTS(1u)
        if (st + 2u < nsteps)
            stash(0u, 0u, ra);
        LOOP_BARRIER();
    }

    bool direct_ok = (p.mode == 0u || p.mode == 3u) && (p.pad & 2u) != 0u;
    if (SWIGLU != 0u) {
        uint r0 = m0 + 16u * (sg % 4u);
        put_frag(swiglu(a00, a01), 0u, sn, r0, nfrag, direct_ok);
        put_frag(swiglu(a10, a11), 1u, sn, r0, nfrag, direct_ok);
        put_frag(swiglu(a20, a21), 2u, sn, r0, nfrag, direct_ok);
        put_frag(swiglu(a30, a31), 3u, sn, r0, nfrag, direct_ok);
        return;
    }
    put_frag(a00, 0u, sn, m0 + sm, nfrag, direct_ok);
    put_frag(a01, 0u, sn, m0 + sm + 16u, nfrag, direct_ok);
    put_frag(a10, 1u, sn, m0 + sm, nfrag, direct_ok);
    put_frag(a11, 1u, sn, m0 + sm + 16u, nfrag, direct_ok);
    put_frag(a20, 2u, sn, m0 + sm, nfrag, direct_ok);
    put_frag(a21, 2u, sn, m0 + sm + 16u, nfrag, direct_ok);
    put_frag(a30, 3u, sn, m0 + sm, nfrag, direct_ok);
    put_frag(a31, 3u, sn, m0 + sm + 16u, nfrag, direct_ok);
}
