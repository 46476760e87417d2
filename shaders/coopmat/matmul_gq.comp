#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
// Grouped expert products (matmul_cm.comp's modes 1 and 2) of Q4_K weights on float16 x, with
// each subgroup staging its own weight rows: a workgroup of 4 subgroups computes 128 tile rows ×
// 64 token slots; subgroup s owns tile rows 32s .. 32s+31 (SWIGLU: W's rows 16s .. +15 and U's
// same rows) across all 64 slots, and lane l decodes tile row 32s + l into the subgroup's own
// staging rows in shared memory. A subgroup therefore waits on no other subgroup for its
// weights (subgroup barriers only); the token tile (64 slots × 64 columns a step, float16) is
// staged in two buffers, one workgroup barrier a step. A step is one Q4_K sub-block pair (64
// columns): the lane's block header and the pair's 32 code bytes (three 16-byte loads) are in
// flight over the two steps before (AHEAD2). The decoding and its rounding are matmul_cm.comp's (d·q − m in
// float32, rounded to float16 once), so both kernels stage the same float16 weights.
// FLAGS (specialization constant 1) bit 0, SWIGLU: y = SiLU(W·x) * (U·x), U at w2_offset (64
// outputs a workgroup). The host sends only Q4_K with 16-byte aligned weight rows, x rows
// (float16, offsets in halves) and y rows, ncols a multiple of 256, nrows a multiple of 4 (y
// is written 4 floats at a time) and the grouping of 64-row tiles.
// Compiled by a glslang that knows GL_KHR_cooperative_matrix (ci/glslang-coopmat.sh).
layout(constant_id = 1) const uint FLAGS = 0;
const bool SWIGLU = (FLAGS & 1u) != 0u;
// FLAGS bit 1, H2 (GLM_VK_H2=0 turns it off): the codes decoded in float16 pairs (stash_w_h2),
// both operands' columns staged in the order (0, 2, 1, 3) within each group of four.
const bool H2 = (FLAGS & 2u) != 0u;
// FLAGS bits 4-8, EXP: measurement switches (bench's grouped-product probe only; the results are
// wrong), matmul_cm's bits: 1 no products, 2 no scale math, 4 no x loads, 8 no weight loads,
// 16 no workgroup barrier in the loop.
const uint EXP = (FLAGS >> 4) & 31u;
// FLAGS bit 2, AHEAD2 (GLM_VK_GQ_AHEAD=1 turns it off): two register sets of weight codes and x
// alternate, so that step s + 2's loads go out while step s's products run (one set: s + 1's).
const bool AHEAD2 = (FLAGS & 4u) != 0u;
// FLAGS bit 10, HD1 (GLM_VK_GQ_HD=0 turns it off): a block's 16-byte header loaded once for its
// four steps (the register set keeps it where the step it refills is in the same block).
const bool HD1 = (FLAGS & 1024u) != 0u;
#define BM 128u
const uint BMO = SWIGLU ? BM / 2u : BM;
#define BN 64u
#define NT 128u
#define LDH 72u // float16 row stride of the staging tiles: 64 columns + 8
layout(local_size_x = 128) in;

#define MAX_EXP_SHARED 128u
shared int gtiles[MAX_EXP_SHARED + 1u];
shared int srow[BN];
bool tiles_shared;
#define TILES_AT(i) (tiles_shared ? gtiles[i] : g[p.g_off + 2u * p.n_exp + (i)])

#include "../matmul_tile.glsl"

layout(std430, binding = 0) readonly buffer W4 { uvec4 w4[]; };
layout(std430, binding = 1) readonly buffer XH4 { uvec4 xh4[]; }; // x: 8 halves at a time
layout(std430, binding = 2) writeonly buffer Y4 { vec4 y4[]; };

// float16 octets as uvec4 (16-byte stores; LDH is a multiple of 8 and so is every offset)
shared uvec4 xs[2u * BN * LDH / 8u];   // two token tiles: xs[(b·BN·LDH + s·LDH + k) / 8]
shared uvec4 ps[4u * 32u * LDH / 8u];  // subgroup s's weight rows: ps[(s·32·LDH + r·LDH + k) / 8]
shared float cs[4u * 256u];              // a 16 × 16 float fragment per subgroup, on the way out

#define ACC coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>

uint x_slot, x_half; // this invocation's token slot and column half (32 columns) of a step
int x_row;
uint w_bytes;        // its weight row's byte offset
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

void stash_x(uint b, uvec4 xr[4])
{
    uint o = (b * BN * LDH + x_slot * LDH + 32u * x_half) / 8u;
    [[unroll]] for (uint v = 0u; v < 4u; v++) {
        // H2: halves (0, 1, 2, 3) of each word pair go to (0, 2, 1, 3)
        uvec4 r = xr[v];
        xs[o + v] = H2 ? uvec4((r.x & 0xffffu) | (r.y << 16), (r.x >> 16) | (r.y & 0xffff0000u),
                               (r.z & 0xffffu) | (r.w << 16), (r.z >> 16) | (r.w & 0xffff0000u))
                       : r;
    }
}

// the block header and the 32 code bytes of step st (sub-block pair st % 4 of block st / 4); with
// HD1 and same (st's block is the one whose header hd holds), hd is kept
void fetch_w(uint st, inout uvec4 hd, out uvec4 q0, out uvec4 q1, bool same)
{
    uint b = w_bytes + (st / 4u) * 144u, q = b + 16u + 32u * (st % 4u);
    if ((EXP & 8u) != 0u) {
        hd = uvec4(0x3c003c00u, st, b, q);
        q0 = uvec4(st ^ b, st + q, b * 3u, q + 7u);
        q1 = q0 + st;
        return;
    }
    if (!(HD1 && same))
        hd = w4[b >> 4];
    q0 = w4[q >> 4];
    q1 = w4[(q >> 4) + 1u];
}

// decodes step st's 64 weights of the lane's row into its staging row
void stash_w(uint st, uint sg, uint lane, uvec4 hd, uvec4 q0, uvec4 q1)
{
    float d0 = 1.0, m0 = 0.0, d1 = 1.0, m1 = 0.0;
    if ((EXP & 2u) == 0u) {
        k4_dm(hd, 2u * (st % 4u), d0, m0);
        k4_dm(hd, 2u * (st % 4u) + 1u, d1, m1);
    }
    if (!w_valid) { // a row past nrows stages zeros
        d0 = 0.0; m0 = 0.0; d1 = 0.0; m1 = 0.0;
    }
    uint o = (sg * 32u * LDH + lane * LDH) / 8u;
    uint qw[8] = uint[8](q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w);
    uvec2 lw[8], hw[8];
    [[unroll]] for (uint j = 0u; j < 8u; j++) { // code bytes 4j .. 4j+3: columns 4j.. (low), 32+4j.. (high)
        uint c = qw[j];
        vec4 lo = vec4(float(c & 15u), float((c >> 8) & 15u), float((c >> 16) & 15u), float((c >> 24) & 15u));
        vec4 hi = vec4(float((c >> 4) & 15u), float((c >> 12) & 15u), float((c >> 20) & 15u), float(c >> 28));
        f16vec4 l = f16vec4(d0 * lo - m0), h = f16vec4(d1 * hi - m1);
        lw[j] = uvec2(packFloat2x16(l.xy), packFloat2x16(l.zw));
        hw[j] = uvec2(packFloat2x16(h.xy), packFloat2x16(h.zw));
    }
    [[unroll]] for (uint j = 0u; j < 4u; j++) {
        ps[o + j] = uvec4(lw[2u * j], lw[2u * j + 1u]);
        ps[o + 4u + j] = uvec4(hw[2u * j], hw[2u * j + 1u]);
    }
}

// stash_w in float16 pairs: a code pair (a code word's bytes 0 and 2, or 1 and 3) ORed into
// float16's mantissa is 1024 + q exactly, one subtraction leaves q − 8 exactly, and the weights
// are fma(q − 8, D, −C) in float16 with D = d and C = m − 8·d rounded to float16. Centring the
// codes keeps C small, so that its rounding and the difference's stay at the weight's scale (a
// host emulation on the dev Q4_K_M weights, every float16 operation rounded to nearest: 1.4e-7
// against 6.9e-7 for q·D − M). Several roundings a weight where stash_w has one
// (test_matmul_weight_rounding measures both on the H100: NMSE 9.1e-8 against 4.3e-8; the
// uncentred q·D − M gave 2.4e-7..2.8e-7). Columns land in the order (0, 2, 1, 3) within each group of four; stash_x
// stages x the same way.
void stash_w_h2(uint st, uint sg, uint lane, uvec4 hd, uvec4 q0, uvec4 q1)
{
    float d0 = 1.0, m0 = 0.0, d1 = 1.0, m1 = 0.0;
    if ((EXP & 2u) == 0u) {
        k4_dm(hd, 2u * (st % 4u), d0, m0);
        k4_dm(hd, 2u * (st % 4u) + 1u, d1, m1);
    }
    // centred codes: w = (q − 8)·d − (m − 8·d), the constant small where m ≈ 8·d
    f16vec2 D0 = f16vec2(float16_t(d0)), M0 = f16vec2(-float16_t(m0 - 8.0 * d0));
    f16vec2 D1 = f16vec2(float16_t(d1)), M1 = f16vec2(-float16_t(m1 - 8.0 * d1));
    const f16vec2 K = f16vec2(1032.0);
    const uint MK = 0x000F000Fu, OR = 0x64006400u;
    if (!w_valid) { // a row past nrows stages zeros: fma(q − 8, 0, 0)
        D0 = f16vec2(0.0); M0 = f16vec2(0.0); D1 = f16vec2(0.0); M1 = f16vec2(0.0);
    }
    uint o = (sg * 32u * LDH + lane * LDH) / 8u;
    uint qw[8] = uint[8](q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w);
    uvec2 lw[8], hw[8];
    [[unroll]] for (uint j = 0u; j < 8u; j++) {
        uint c = qw[j];
        f16vec2 l02 = unpackFloat2x16((c & MK) | OR) - K, l13 = unpackFloat2x16(((c >> 8) & MK) | OR) - K;
        f16vec2 h02 = unpackFloat2x16(((c >> 4) & MK) | OR) - K, h13 = unpackFloat2x16(((c >> 12) & MK) | OR) - K;
        lw[j] = uvec2(packFloat2x16(fma(l02, D0, M0)), packFloat2x16(fma(l13, D0, M0)));
        hw[j] = uvec2(packFloat2x16(fma(h02, D1, M1)), packFloat2x16(fma(h13, D1, M1)));
    }
    [[unroll]] for (uint j = 0u; j < 4u; j++) {
        ps[o + j] = uvec4(lw[2u * j], lw[2u * j + 1u]);
        ps[o + 4u + j] = uvec4(hw[2u * j], hw[2u * j + 1u]);
    }
}

void put_frag(ACC a, uint i, uint r0, uint sg)
{
    uint s0 = 16u * i;
    if (tile_n0 + s0 >= tile_count || r0 >= p.nrows)
        return;
    int yv[2];
    [[unroll]] for (uint h = 0u; h < 2u; h++)
        yv[h] = srow[s0 + gl_SubgroupInvocationID / 4u + 8u * h];
    coopMatStore(a, cs, sg * 256u, 16u, gl_CooperativeMatrixLayoutRowMajor);
    subgroupMemoryBarrierShared();
    subgroupBarrier();
    uint c4 = gl_SubgroupInvocationID % 4u;
    [[unroll]] for (uint h = 0u; h < 2u; h++) {
        uint o = sg * 256u + (gl_SubgroupInvocationID / 4u + 8u * h) * 16u + 4u * c4;
        if (yv[h] >= 0 && r0 + 4u * c4 < p.nrows)
            y4[(y_base + uint(yv[h]) * p.y_ld + r0) / 4u + c4] = vec4(cs[o], cs[o + 1u], cs[o + 2u], cs[o + 3u]);
    }
    subgroupMemoryBarrierShared();
    subgroupBarrier();
}

ACC swiglu(ACC g, ACC u)
{
    ACC h = u;
    for (int e = 0; e < h.length(); e++)
        h[e] = (g[e] / (1.0 + exp(-g[e]))) * u[e];
    return h;
}

// step's products: the subgroup's two weight fragments (its 32 staged rows) against nfrag token
// fragments of buffer b, 16 columns at a time
// GQ_XPROBE (defined only for the probe's own build of this file, spv_matmul_gq_xprobe; the
// model's products never run it): FLAGS bit 9 loads one x fragment a step and multiplies it in
// place of every x fragment, bit 3 the subgroup's two weight fragments likewise (wrong results),
// so that the grouped-product probe can time the fragment loads' share.
#ifdef GQ_XPROBE
const bool X_ONCE = (FLAGS & 512u) != 0u, W_ONCE = (FLAGS & 8u) != 0u;
#define LOAD_B(BF, OFF, BW)                                                                               \
    if (W_ONCE)                                                                                           \
        BF = BW;                                                                                          \
    else                                                                                                  \
        coopMatLoad(BF, ps, OFF, LDH / 8u, gl_CooperativeMatrixLayoutColumnMajor)
#define LOAD_A(AF, I)                                                                                     \
    if (X_ONCE)                                                                                           \
        AF = ax;                                                                                          \
    else                                                                                                  \
        coopMatLoad(AF, xs, (b * BN * LDH + 16u * I * LDH + kk) / 8u, LDH / 8u, gl_CooperativeMatrixLayoutRowMajor)
#else
#define LOAD_B(BF, OFF, BW) coopMatLoad(BF, ps, OFF, LDH / 8u, gl_CooperativeMatrixLayoutColumnMajor)
#define LOAD_A(AF, I)                                                                                     \
    coopMatLoad(AF, xs, (b * BN * LDH + 16u * I * LDH + kk) / 8u, LDH / 8u, gl_CooperativeMatrixLayoutRowMajor)
#endif

// The x fragments of a 16-column slice are all loaded before its products: where each one's
// load sat in its own branch (I < nfrag), the compiler issued it right before its two products
// and exposed every load's latency in turn (the grouped-product probe: 283 -> 240 us). So a step's
// products take one branch-free body for its fragment count (PRODUCTS_N: N x fragments; nfrag 1
// takes N = 2, the second fragment's slots being zeros).
#define PRODUCTS_N(N)                                                                                     \
    [[unroll]] for (uint kk = 0u; kk < 64u; kk += 16u) {                                                  \
        coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB> bf0, bf1;                             \
        coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA> af0, af1, af2, af3;                   \
        LOAD_B(bf0, (sg * 32u * LDH + kk) / 8u, bw0);                                                     \
        LOAD_B(bf1, (sg * 32u * LDH + 16u * LDH + kk) / 8u, bw1);                                         \
        LOAD_A(af0, 0u);                                                                                  \
        LOAD_A(af1, 1u);                                                                                  \
        if (N > 2u)                                                                                       \
            LOAD_A(af2, 2u);                                                                              \
        if (N > 3u)                                                                                       \
            LOAD_A(af3, 3u);                                                                              \
        a00 = coopMatMulAdd(af0, bf0, a00);                                                               \
        a01 = coopMatMulAdd(af0, bf1, a01);                                                               \
        a10 = coopMatMulAdd(af1, bf0, a10);                                                               \
        a11 = coopMatMulAdd(af1, bf1, a11);                                                               \
        if (N > 2u) {                                                                                     \
            a20 = coopMatMulAdd(af2, bf0, a20);                                                           \
            a21 = coopMatMulAdd(af2, bf1, a21);                                                           \
        }                                                                                                 \
        if (N > 3u) {                                                                                     \
            a30 = coopMatMulAdd(af3, bf0, a30);                                                           \
            a31 = coopMatMulAdd(af3, bf1, a31);                                                           \
        }                                                                                                 \
    }

void products(uint b, uint sg, uint nfrag, inout ACC a00, inout ACC a01, inout ACC a10, inout ACC a11,
              inout ACC a20, inout ACC a21, inout ACC a30, inout ACC a31)
{
#ifdef GQ_XPROBE
    coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA> ax;
    coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB> bw0, bw1;
    if (X_ONCE)
        coopMatLoad(ax, xs, (b * BN * LDH) / 8u, LDH / 8u, gl_CooperativeMatrixLayoutRowMajor);
    if (W_ONCE) {
        coopMatLoad(bw0, ps, (sg * 32u * LDH) / 8u, LDH / 8u, gl_CooperativeMatrixLayoutColumnMajor);
        coopMatLoad(bw1, ps, (sg * 32u * LDH + 16u * LDH) / 8u, LDH / 8u, gl_CooperativeMatrixLayoutColumnMajor);
    }
#endif
    if (nfrag == 0u || (EXP & 1u) != 0u)
        return;
    if (nfrag <= 2u) {
        PRODUCTS_N(2u)
    } else if (nfrag == 3u) {
        PRODUCTS_N(3u)
    } else {
        PRODUCTS_N(4u)
    }
}

void main()
{
    uint tid = gl_LocalInvocationID.x, sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
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
    // the lane's tile row: 32·sg + lane, or (SWIGLU) W's row 16·sg + lane, U's for lanes 16..31
    uint orow = SWIGLU ? m0 + 16u * sg + lane % 16u : m0 + 32u * sg + lane;
    if (SWIGLU && lane >= 16u)
        wbase += p.w2_offset - p.w_offset;
    w_valid = orow < p.nrows;
    w_bytes = wbase + min(orow, p.nrows - 1u) * p.row_bytes;
    x_slot = tid / 2u;
    x_half = tid % 2u;
    {
        int yr = srow[x_slot];
        x_row = yr >= 0 && p.mode == 1u ? yr / int(p.k) : yr;
    }
    int left = int(tile_count) - int(tile_n0);
    uint nfrag = uint(clamp((left + 15) / 16, 0, 4));
    ACC a00 = ACC(0.0), a01 = ACC(0.0), a10 = ACC(0.0), a11 = ACC(0.0);
    ACC a20 = ACC(0.0), a21 = ACC(0.0), a30 = ACC(0.0), a31 = ACC(0.0);
    uint nsteps = p.ncols / 64u;
    // one step: st's weights decoded from W (then W refilled with st + AH's codes), st's products
    // on token buffer st % 2, st + 1's x (in XN) staged into the other; XF takes st + AH's x
#define GQ_STEP(ST, AH, WH, WQ0, WQ1, XF, XN)                                                             \
    {                                                                                                     \
        uint b = (ST) % 2u;                                                                               \
        if ((ST) + AH < nsteps)                                                                           \
            fetch_x((ST) + AH, XF);                                                                       \
        if (H2)                                                                                           \
            stash_w_h2(ST, sg, lane, WH, WQ0, WQ1);                                                       \
        else                                                                                              \
            stash_w(ST, sg, lane, WH, WQ0, WQ1);                                                          \
        if ((ST) + AH < nsteps)                                                                           \
            fetch_w((ST) + AH, WH, WQ0, WQ1, ((ST) + AH) / 4u == (ST) / 4u);                              \
        subgroupMemoryBarrierShared();                                                                    \
        subgroupBarrier();                                                                                \
        products(b, sg, nfrag, a00, a01, a10, a11, a20, a21, a30, a31);                                   \
        if ((ST) + 1u < nsteps)                                                                           \
            stash_x(1u - b, XN);                                                                          \
        if ((EXP & 16u) == 0u)                                                                            \
            barrier();                                                                                    \
    }
    uvec4 xa[4], ha, qa0, qa1;
    fetch_x(0u, xa);
    fetch_w(0u, ha, qa0, qa1, false);
    if (AHEAD2) {
        // sets a and b: even steps' codes and x in a, odd steps' in b
        uvec4 xb[4], hb, qb0, qb1;
        if (nsteps > 1u) {
            fetch_x(1u, xb);
            fetch_w(1u, hb, qb0, qb1, false);
        }
        stash_x(0u, xa);
        barrier();
        for (uint st = 0u; st < nsteps; st += 2u) {
            GQ_STEP(st, 2u, ha, qa0, qa1, xa, xb)
            if (st + 1u < nsteps)
                GQ_STEP(st + 1u, 2u, hb, qb0, qb1, xb, xa)
        }
    } else {
        stash_x(0u, xa);
        barrier();
        for (uint st = 0u; st < nsteps; st++)
            GQ_STEP(st, 1u, ha, qa0, qa1, xa, xa)
    }
    if (SWIGLU) {
        uint r0 = m0 + 16u * sg;
        put_frag(swiglu(a00, a01), 0u, r0, sg);
        put_frag(swiglu(a10, a11), 1u, r0, sg);
        put_frag(swiglu(a20, a21), 2u, r0, sg);
        put_frag(swiglu(a30, a31), 3u, r0, sg);
        return;
    }
    uint r0 = m0 + 32u * sg;
    put_frag(a00, 0u, r0, sg);
    put_frag(a01, 0u, r0 + 16u, sg);
    put_frag(a10, 1u, r0, sg);
    put_frag(a11, 1u, r0 + 16u, sg);
    put_frag(a20, 2u, r0, sg);
    put_frag(a21, 2u, r0 + 16u, sg);
    put_frag(a30, 3u, r0, sg);
    put_frag(a31, 3u, r0 + 16u, sg);
}
