#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
// matmul.comp on tensor cores (VK_KHR_cooperative_matrix): the same tiles, modes and
// dequantization (matmul_tile.glsl), with the weight and activation tiles held in shared
// memory as float16 and multiplied as 16×16×16 float16 fragments accumulating in float32.
// Four subgroups of 32 invocations; subgroup s owns tokens 32·(s/2) .. +32 × weight rows
// 32·(s%2) .. +32 of the 64 × 64 tile (2 × 2 fragments). The host selects this pipeline only
// where the device lists that fragment shape and a subgroup size of 32.
// Compiled by a glslang that knows GL_KHR_cooperative_matrix (ci/glslang-coopmat.sh).
#define BM 64u
#define BN 64u
#define WG_SIZE 128u
#define LDS 72u // float16 row stride of the shared tiles (64 + 8: fewer bank conflicts)
layout(local_size_x = 128) in;

#include "../matmul_tile.glsl"

shared float16_t ws[BM * LDS]; // ws[m·LDS + k] = W[m0 + m][64·step + k]
shared float16_t xs[BN * LDS]; // xs[s·LDS + k] = x[slot s][64·step + k]
shared float cs[BN * (BM + 4u)]; // the finished tile, cs[s·(BM+4) + m]

void main()
{
    uint wbase;
    if (!tile_rows(wbase))
        return;
    uint tid = gl_LocalInvocationID.x, sg = gl_SubgroupID;
    uint m0 = gl_WorkGroupID.x * BM;
    uint sn = 32u * (sg / 2u), sm = 32u * (sg % 2u);
    coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator> acc[2][2];
    [[unroll]] for (uint i = 0u; i < 2u; i++)
        [[unroll]] for (uint j = 0u; j < 2u; j++)
            acc[i][j] = coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>(0.0);
    barrier(); // tok_x / tok_y written
    uint nchunks = p.ncols / 32u, nsteps = (nchunks + 1u) / 2u;
    fetch_step(wbase, m0, 0u, nchunks);
    for (uint st = 0u; st < nsteps; st++) {
        [[unroll]] for (uint it = 0u; it < LOADS; it++) {
            uint idx = tid + it * WG_SIZE, r = idx / 8u, k = 32u * ((idx % 8u) / 4u) + 8u * (idx % 4u);
            [[unroll]] for (uint j = 0u; j < 8u; j += 2u) {
                f16vec2 wv = f16vec2(wreg[it][j], wreg[it][j + 1u]), xv = f16vec2(xreg[it][j], xreg[it][j + 1u]);
                ws[r * LDS + k + j] = wv.x;
                ws[r * LDS + k + j + 1u] = wv.y;
                xs[r * LDS + k + j] = xv.x;
                xs[r * LDS + k + j + 1u] = xv.y;
            }
        }
        barrier();
        if (st + 1u < nsteps)
            fetch_step(wbase, m0, st + 1u, nchunks);
        [[unroll]] for (uint kk = 0u; kk < 64u; kk += 16u) {
            coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA> a[2];
            coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB> b[2];
            [[unroll]] for (uint i = 0u; i < 2u; i++)
                coopMatLoad(a[i], xs, (sn + 16u * i) * LDS + kk, LDS, gl_CooperativeMatrixLayoutRowMajor);
            [[unroll]] for (uint j = 0u; j < 2u; j++) // B[k][m] = ws[m][k]: column-major
                coopMatLoad(b[j], ws, (sm + 16u * j) * LDS + kk, LDS, gl_CooperativeMatrixLayoutColumnMajor);
            [[unroll]] for (uint i = 0u; i < 2u; i++)
                [[unroll]] for (uint j = 0u; j < 2u; j++)
                    acc[i][j] = coopMatMulAdd(a[i], b[j], acc[i][j]);
        }
        barrier();
    }
    [[unroll]] for (uint i = 0u; i < 2u; i++)
        [[unroll]] for (uint j = 0u; j < 2u; j++)
            coopMatStore(acc[i][j], cs, (sn + 16u * i) * (BM + 4u) + sm + 16u * j, BM + 4u,
                         gl_CooperativeMatrixLayoutRowMajor);
    barrier();
    for (uint idx = tid; idx < BN * BM; idx += WG_SIZE) {
        uint s = idx / BM, m = idx % BM;
        store_y(s, m0 + m, cs[s * (BM + 4u) + m]);
    }
}
