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
// rows, BN = 64 or, with specialization constant 1 set (WIDE), 128. Subgroup s owns weight rows
// 32·(s % 4) .. +31 (2 fragments) × token slots (BN/2)·(s / 4) .. +BN/2-1 (BN/32 fragments), and
// skips the fragments whose 16 slots are all empty (grouped experts with few tokens).
// The shared dimension advances 32 columns (one chunk) a step through two staging buffers:
// while the fragments of step i are multiplied out of one, the loads of step i+1 are in
// flight into registers and then written into the other, so a step needs one barrier.
// Each invocation dequantizes 16 consecutive weights of one row and converts 8 or 16
// activations of one slot (16-byte loads where the host says the rows are aligned: push
// constant `pad` bit 0). Finished fragments go straight to y where their 16 × 16 outputs are
// all in range and aligned (modes 0 and 3, `pad` bit 1), otherwise through a per-subgroup
// scratch in shared memory. The host selects this pipeline only where the device lists that
// fragment shape, subgroups of 32 and 48 KiB of shared memory (WIDE uses all of it).
// Compiled by a glslang that knows GL_KHR_cooperative_matrix (ci/glslang-coopmat.sh).
layout(constant_id = 1) const uint WIDE = 0;
#define BM 128u
const uint BN = 64u * (WIDE + 1u);
#define WG_SIZE 256u
#define LDV 20u // f16vec2 row stride of the staging tiles: 16 pairs of one chunk + 4 (no bank conflicts)
layout(local_size_x = 256) in;

#include "../matmul_tile.glsl"

layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; }; // x, 16 bytes at a time

shared f16vec2 ws[2u * BM * LDV]; // ws[b·BM·LDV + m·LDV + k/2] = W[m0 + m][32·step + k], k and k+1
shared f16vec2 xs[2u * BN * LDV]; // xs[b·BN·LDV + s·LDV + k/2] = x[slot s][32·step + k], k and k+1
shared float cs[8u * 256u];       // a 16 × 16 float fragment per subgroup, on the way out

#define WT (BN / 2u)        // token slots per subgroup
#define XPT (BN / 8u)       // activations an invocation converts per step (8 or 16)
#define XTPS (32u / XPT)    // invocations per slot

// Per-invocation loading assignments, fixed for the whole shared dimension.
uint w_row;   // the weight row (within the tile) whose 16 elements 16·w_half .. +15 it dequantizes
uint w_half;
uint w_bytes; // byte offset of that row (a clamped row past nrows; its values are then zeros)
bool w_valid;
uint x_slot, x_col; // the slot and first column (within a chunk) of its activations
int x_row;          // that slot's x row, -1 when empty

float wv[16]; // the next step's weights and activations, between fetch and stash
vec4 xv[4];

void fetch(uint c)
{
    float t[8];
    deq8(w_bytes, c, 2u * w_half, t);
    [[unroll]] for (uint j = 0u; j < 8u; j++)
        wv[j] = w_valid ? t[j] : 0.0;
    deq8(w_bytes, c, 2u * w_half + 1u, t);
    [[unroll]] for (uint j = 0u; j < 8u; j++)
        wv[8u + j] = w_valid ? t[j] : 0.0;
    [[unroll]] for (uint v = 0u; v < 4u; v++)
        xv[v] = vec4(0.0);
    if (x_row >= 0) {
        uint o = x_base + uint(x_row) * p.x_ld + 32u * c + x_col;
        if ((p.pad & 1u) != 0u) {
            [[unroll]] for (uint v = 0u; v < 4u; v++)
                if (v < XPT / 4u)
                    xv[v] = x4[o / 4u + v];
        } else {
            [[unroll]] for (uint v = 0u; v < 4u; v++)
                if (v < XPT / 4u)
                    xv[v] = vec4(x[o + 4u * v], x[o + 4u * v + 1u], x[o + 4u * v + 2u], x[o + 4u * v + 3u]);
        }
    }
}

void stash(uint b)
{
    uint wo = b * BM * LDV + w_row * LDV + 8u * w_half;
    [[unroll]] for (uint j = 0u; j < 8u; j++)
        ws[wo + j] = f16vec2(wv[2u * j], wv[2u * j + 1u]);
    uint xo = b * BN * LDV + x_slot * LDV + x_col / 2u;
    [[unroll]] for (uint v = 0u; v < 4u; v++)
        if (v < XPT / 4u) {
            xs[xo + 2u * v] = f16vec2(xv[v].xy);
            xs[xo + 2u * v + 1u] = f16vec2(xv[v].zw);
        }
}

void main()
{
    uint wbase;
    if (!tile_rows(wbase))
        return;
    uint tid = gl_LocalInvocationID.x, sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
    uint m0 = gl_WorkGroupID.x * BM;
    w_row = tid / 2u;
    w_half = tid % 2u;
    w_valid = m0 + w_row < p.nrows;
    w_bytes = wbase + min(m0 + w_row, p.nrows - 1u) * p.row_bytes;
    x_slot = tid / XTPS;
    x_col = XPT * (tid % XTPS);
    int yr_unused;
    slot_rows(x_slot, x_row, yr_unused);

    uint sm = 32u * (sg % 4u), sn = WT * (sg / 4u);
    // fragments of this subgroup with at least one filled slot (slots fill from the front)
    int left = int(tile_count) - int(tile_n0 + sn);
    uint nfrag = uint(clamp((left + 15) / 16, 0, int(WT / 16u)));
    coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator> acc[4][2];
    [[unroll]] for (uint i = 0u; i < 4u; i++)
        [[unroll]] for (uint j = 0u; j < 2u; j++)
            acc[i][j] = coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>(0.0);

    uint nsteps = p.ncols / 32u;
    fetch(0u);
    stash(0u);
    barrier();
    for (uint st = 0u; st < nsteps; st++) {
        uint b = st % 2u;
        bool more = st + 1u < nsteps;
        if (more)
            fetch(st + 1u);
        if (nfrag > 0u) {
            [[unroll]] for (uint kk = 0u; kk < 32u; kk += 16u) {
                coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB> bf[2];
                [[unroll]] for (uint j = 0u; j < 2u; j++) // B[k][m] = W[m][k]: column-major
                    coopMatLoad(bf[j], ws, b * BM * LDV + (sm + 16u * j) * LDV + kk / 2u, LDV,
                                gl_CooperativeMatrixLayoutColumnMajor);
                [[unroll]] for (uint i = 0u; i < 4u; i++) {
                    if (i < WT / 16u && i < nfrag) {
                        coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA> af;
                        coopMatLoad(af, xs, b * BN * LDV + (sn + 16u * i) * LDV + kk / 2u, LDV,
                                    gl_CooperativeMatrixLayoutRowMajor);
                        acc[i][0] = coopMatMulAdd(af, bf[0], acc[i][0]);
                        acc[i][1] = coopMatMulAdd(af, bf[1], acc[i][1]);
                    }
                }
            }
        }
        if (more)
            stash(1u - b);
        barrier();
    }

    bool direct_ok = (p.mode == 0u || p.mode == 3u) && (p.pad & 2u) != 0u;
    [[unroll]] for (uint i = 0u; i < 4u; i++) {
        if (i >= WT / 16u || i >= nfrag)
            continue;
        uint s0 = sn + 16u * i; // first slot of the fragment
        [[unroll]] for (uint j = 0u; j < 2u; j++) {
            uint r0 = m0 + sm + 16u * j; // first weight row
            if (r0 >= p.nrows)
                continue;
            if (direct_ok && tile_n0 + s0 + 16u <= tile_count && r0 + 16u <= p.nrows) {
                coopMatStore(acc[i][j], y, y_base + (tile_n0 + s0) * p.y_ld + r0, p.y_ld,
                             gl_CooperativeMatrixLayoutRowMajor);
                continue;
            }
            coopMatStore(acc[i][j], cs, sg * 256u, 16u, gl_CooperativeMatrixLayoutRowMajor);
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            for (uint e = lane; e < 256u; e += 32u) {
                int xr, yr;
                slot_rows(s0 + e / 16u, xr, yr);
                uint m = r0 + e % 16u;
                if (yr >= 0 && m < p.nrows)
                    y[y_base + uint(yr) * p.y_ld + m] = cs[sg * 256u + e];
            }
            subgroupMemoryBarrierShared();
            subgroupBarrier();
        }
    }
}
