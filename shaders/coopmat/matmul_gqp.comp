#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
// matmul_gq.comp's grouped Q4_K products (modes 1 and 2, float16 x, codes decoded in float16
// pairs) with producer and consumer subgroups (GLM_VK_GQ_PC=1): a workgroup of 8 subgroups
// computes 64 staging rows × 64 token slots. Subgroups 4..7 (producers) only load and decode:
// producer lane l takes staging row l % 64 and half l / 64 of its sub-block pair's 32 code
// bytes (the low nibbles of 16 bytes are 16 columns of the pair's first sub-block, the high
// nibbles 16 of its second), and 32 halves of x; subgroups 0..3 (consumers) only multiply:
// consumer c owns staging rows 16c .. 16c+15 across the 64 slots. Both staging tiles are double
// buffered, so that while the consumers multiply step s the producers stage step s + 1, with one
// workgroup barrier a step; the producers' loads run two steps ahead (step s + 3's go out after
// step s + 1 is staged). 41 KB of shared memory.
// FLAGS (specialization constant 1) bit 0, SWIGLU: y = SiLU(W·x) * (U·x), U at w2_offset: consumer
// c's staging rows are W's rows 8c .. 8c+7 and U's same rows (32 outputs a workgroup), combined
// on the way out. Bits 4-8, EXP: the grouped-product probe's switches (wrong results): 1 no
// products, 2 no scale math, 4 no x loads, 8 no weight loads.
// The host sends what it sends matmul_gq (Q4_K, 16-byte aligned rows and offsets, ncols a
// multiple of 256, nrows a multiple of 4, the grouping of 64-row tiles), float16 pairs only.
// Compiled by a glslang that knows GL_KHR_cooperative_matrix (ci/glslang-coopmat.sh).
layout(constant_id = 1) const uint FLAGS = 0;
const bool SWIGLU = (FLAGS & 1u) != 0u;
const uint EXP = (FLAGS >> 4) & 31u;
#define BM 64u
const uint BMO = SWIGLU ? BM / 2u : BM;
#define BN 64u
#define NT 256u
#define LDH 72u // float16 row stride of the staging tiles: 64 columns + 8
layout(local_size_x = 256) in;

#define MAX_EXP_SHARED 128u
shared int gtiles[MAX_EXP_SHARED + 1u];
shared int srow[BN];
bool tiles_shared;
#define TILES_AT(i) (tiles_shared ? gtiles[i] : g[p.g_off + 2u * p.n_exp + (i)])

#include "../matmul_tile.glsl"

layout(std430, binding = 0) readonly buffer W4 { uvec4 w4[]; };
layout(std430, binding = 1) readonly buffer XH4 { uvec4 xh4[]; }; // x: 8 halves at a time
layout(std430, binding = 2) writeonly buffer Y4 { vec4 y4[]; };

// float16 octets as uvec4; buffer b of each: xs[(b·BN·LDH + s·LDH + k) / 8], ps[(b·BM·LDH + r·LDH + k) / 8]
shared uvec4 xs[2u * BN * LDH / 8u];
shared uvec4 ps[2u * BM * LDH / 8u];
shared float cs[4u * 256u]; // a 16 × 16 float fragment per consumer, on the way out

#define ACC coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>

// a producer's token slot and column half of x, its staging row, weight row and code half
uint x_slot, x_half, p_row, w_half, w_bytes;
int x_row;
bool w_valid;

void fetch_x(uint st, out uvec4 xr[4])
{
    [[unroll]] for (uint v = 0u; v < 4u; v++)
        xr[v] = (EXP & 4u) != 0u ? uvec4(st, uint(x_row), v, 0x3c003c00u) : uvec4(0u);
    if (x_row >= 0 && (EXP & 4u) == 0u) {
        uint o = (x_base + uint(x_row) * p.x_ld + 64u * st + 32u * x_half) / 8u;
        [[unroll]] for (uint v = 0u; v < 4u; v++)
            xr[v] = xh4[o + v];
    }
}

// x in the float16-pair order: halves (0, 1, 2, 3) of each word pair go to (0, 2, 1, 3)
void stash_x(uint b, uvec4 xr[4])
{
    uint o = (b * BN * LDH + x_slot * LDH + 32u * x_half) / 8u;
    [[unroll]] for (uint v = 0u; v < 4u; v++) {
        uvec4 r = xr[v];
        xs[o + v] = uvec4((r.x & 0xffffu) | (r.y << 16), (r.x >> 16) | (r.y & 0xffff0000u),
                          (r.z & 0xffffu) | (r.w << 16), (r.z >> 16) | (r.w & 0xffff0000u));
    }
}

// the block header and the producer's 16 code bytes of step st (sub-block pair st % 4 of block st / 4)
void fetch_w(uint st, out uvec4 hd, out uvec4 q)
{
    uint b = w_bytes + (st / 4u) * 144u, qo = b + 16u + 32u * (st % 4u) + 16u * w_half;
    if ((EXP & 8u) != 0u) {
        hd = uvec4(0x3c003c00u, st, b, qo);
        q = uvec4(st ^ b, st + qo, b * 3u, qo + 7u);
        return;
    }
    hd = w4[b >> 4];
    q = w4[qo >> 4];
}

// step st's 32 weights of the producer's code half into staging buffer b, decoded as
// matmul_gq.comp's stash_w_h2 (centred float16 pairs): code byte 16h + i gives column 16h + i
// (low nibble) and 32 + 16h + i (high nibble), in the order (0, 2, 1, 3) within each four
void stash_w(uint st, uint b, uvec4 hd, uvec4 q)
{
    float d0 = 1.0, m0 = 0.0, d1 = 1.0, m1 = 0.0;
    if ((EXP & 2u) == 0u) {
        k4_dm(hd, 2u * (st % 4u), d0, m0);
        k4_dm(hd, 2u * (st % 4u) + 1u, d1, m1);
    }
    f16vec2 D0 = f16vec2(float16_t(d0)), M0 = f16vec2(-float16_t(m0 - 8.0 * d0));
    f16vec2 D1 = f16vec2(float16_t(d1)), M1 = f16vec2(-float16_t(m1 - 8.0 * d1));
    const f16vec2 K = f16vec2(1032.0);
    const uint MK = 0x000F000Fu, OR = 0x64006400u;
    if (!w_valid) { // a row past nrows stages zeros: fma(q − 8, 0, 0)
        D0 = f16vec2(0.0); M0 = f16vec2(0.0); D1 = f16vec2(0.0); M1 = f16vec2(0.0);
    }
    uint o = (b * BM * LDH + p_row * LDH) / 8u + 2u * w_half;
    uvec2 lw[4], hw[4];
    [[unroll]] for (uint j = 0u; j < 4u; j++) {
        uint c = q[j];
        f16vec2 l02 = unpackFloat2x16((c & MK) | OR) - K, l13 = unpackFloat2x16(((c >> 8) & MK) | OR) - K;
        f16vec2 h02 = unpackFloat2x16(((c >> 4) & MK) | OR) - K, h13 = unpackFloat2x16(((c >> 12) & MK) | OR) - K;
        lw[j] = uvec2(packFloat2x16(fma(l02, D0, M0)), packFloat2x16(fma(l13, D0, M0)));
        hw[j] = uvec2(packFloat2x16(fma(h02, D1, M1)), packFloat2x16(fma(h13, D1, M1)));
    }
    ps[o] = uvec4(lw[0], lw[1]);
    ps[o + 1u] = uvec4(lw[2], lw[3]);
    ps[o + 4u] = uvec4(hw[0], hw[1]);
    ps[o + 5u] = uvec4(hw[2], hw[3]);
}

// consumer c's products of staging buffer b: its 16 staging rows against nfrag token fragments
void products(uint b, uint c, uint nfrag, inout ACC a0, inout ACC a1, inout ACC a2, inout ACC a3)
{
    [[unroll]] for (uint kk = 0u; kk < 64u; kk += 16u) {
        coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB> bf;
        coopMatLoad(bf, ps, (b * BM * LDH + 16u * c * LDH + kk) / 8u, LDH / 8u, gl_CooperativeMatrixLayoutColumnMajor);
#define FRAG(I, A)                                                                                        \
        if (I < nfrag && (EXP & 1u) == 0u) {                                                              \
            coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA> af;                               \
            coopMatLoad(af, xs, (b * BN * LDH + 16u * I * LDH + kk) / 8u, LDH / 8u,                      \
                        gl_CooperativeMatrixLayoutRowMajor);                                              \
            A = coopMatMulAdd(af, bf, A);                                                                 \
        }
        FRAG(0u, a0)
        FRAG(1u, a1)
        FRAG(2u, a2)
        FRAG(3u, a3)
    }
}

// token fragment i (slots 16i ..) of consumer c's accumulator a to y: rows r0 .. r0+15, or
// (SWIGLU) SiLU(W)·U of outputs r0 .. r0+7 (a's columns 0..7 are W's rows, 8..15 U's)
void put_frag(ACC a, uint i, uint r0, uint c)
{
    uint s0 = 16u * i, lane = gl_SubgroupInvocationID;
    if (tile_n0 + s0 >= tile_count || r0 >= p.nrows)
        return;
    coopMatStore(a, cs, c * 256u, 16u, gl_CooperativeMatrixLayoutRowMajor);
    subgroupMemoryBarrierShared();
    subgroupBarrier();
    if (SWIGLU) { // lane: slot lane / 2, outputs 4·(lane % 2) ..
        uint t = lane / 2u, q4 = 4u * (lane % 2u), o = c * 256u + t * 16u + q4;
        int yr = srow[s0 + t];
        if (yr >= 0 && r0 + q4 < p.nrows) {
            vec4 gv = vec4(cs[o], cs[o + 1u], cs[o + 2u], cs[o + 3u]);
            vec4 uv = vec4(cs[o + 8u], cs[o + 9u], cs[o + 10u], cs[o + 11u]);
            y4[(y_base + uint(yr) * p.y_ld + r0 + q4) / 4u] = gv / (1.0 + exp(-gv)) * uv;
        }
    } else {
        uint c4 = lane % 4u;
        [[unroll]] for (uint h = 0u; h < 2u; h++) {
            uint t = lane / 4u + 8u * h, o = c * 256u + t * 16u + 4u * c4;
            int yr = srow[s0 + t];
            if (yr >= 0 && r0 + 4u * c4 < p.nrows)
                y4[(y_base + uint(yr) * p.y_ld + r0) / 4u + c4] = vec4(cs[o], cs[o + 1u], cs[o + 2u], cs[o + 3u]);
        }
    }
    subgroupMemoryBarrierShared();
    subgroupBarrier();
}

void main()
{
    uint tid = gl_LocalInvocationID.x, sg = gl_SubgroupID;
    tiles_shared = p.n_exp <= MAX_EXP_SHARED;
    if (tiles_shared) {
        for (uint i = tid; i <= p.n_exp; i += NT)
            gtiles[i] = g[p.g_off + 2u * p.n_exp + i];
        barrier();
    }
    uint wbase;
    if (!tile_rows(wbase))
        return;
    if (tid < BN) {
        int xr, yr;
        slot_rows(tid, xr, yr);
        srow[tid] = yr;
    }
    barrier();
    uint m0 = gl_WorkGroupID.x * BMO;
    bool producer = sg >= 4u;
    uint nsteps = p.ncols / 64u;
    int left = int(tile_count) - int(tile_n0);
    uint nfrag = uint(clamp((left + 15) / 16, 0, 4));
    ACC a0 = ACC(0.0), a1 = ACC(0.0), a2 = ACC(0.0), a3 = ACC(0.0);
    uvec4 xa[4], xb[4], ha, qa, hb, qb; // producers' two register sets: even steps' in a, odd in b
    if (producer) {
        uint pl = tid - 128u;
        p_row = pl % BM;
        w_half = pl / BM;
        uint orow, wb = wbase;
        if (SWIGLU) { // staging row 16c + j: W's row 8c + j (j < 8), U's row 8c + j − 8
            uint j = p_row % 16u;
            orow = m0 + 8u * (p_row / 16u) + j % 8u;
            if (j >= 8u)
                wb += p.w2_offset - p.w_offset;
        } else {
            orow = m0 + p_row;
        }
        w_valid = orow < p.nrows;
        w_bytes = wb + min(orow, p.nrows - 1u) * p.row_bytes;
        x_slot = pl / 2u;
        x_half = pl % 2u;
        int yr = srow[x_slot];
        x_row = yr >= 0 && p.mode == 1u ? yr / int(p.k) : yr;
        fetch_x(0u, xa);
        fetch_w(0u, ha, qa);
        if (nsteps > 1u) {
            fetch_x(1u, xb);
            fetch_w(1u, hb, qb);
        }
        stash_w(0u, 0u, ha, qa);
        stash_x(0u, xa);
        if (nsteps > 2u) {
            fetch_x(2u, xa);
            fetch_w(2u, ha, qa);
        }
    }
    barrier();
    // step ST: the consumers multiply buffer ST % 2; the producers stage step ST + 1 (from the
    // set WH, WQ, XR) into the other buffer, then load step ST + 3 into that set
#define PC_STEP(ST, WH, WQ, XR)                                                                           \
    {                                                                                                     \
        if (producer) {                                                                                   \
            if ((ST) + 1u < nsteps) {                                                                     \
                stash_w((ST) + 1u, ((ST) + 1u) % 2u, WH, WQ);                                             \
                stash_x(((ST) + 1u) % 2u, XR);                                                            \
            }                                                                                             \
            if ((ST) + 3u < nsteps) {                                                                     \
                fetch_x((ST) + 3u, XR);                                                                   \
                fetch_w((ST) + 3u, WH, WQ);                                                               \
            }                                                                                             \
        } else {                                                                                          \
            products((ST) % 2u, sg, nfrag, a0, a1, a2, a3);                                               \
        }                                                                                                 \
        barrier();                                                                                        \
    }
    for (uint st = 0u; st < nsteps; st += 2u) {
        PC_STEP(st, hb, qb, xb)
        if (st + 1u < nsteps)
            PC_STEP(st + 1u, ha, qa, xa)
    }
    if (producer)
        return;
    uint r0 = m0 + (SWIGLU ? 8u : 16u) * sg;
    put_frag(a0, 0u, r0, sg);
    put_frag(a1, 1u, r0, sg);
    put_frag(a2, 2u, r0, sg);
    put_frag(a3, 3u, r0, sg);
}
