#version 450
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
// Which element of a 16 × 16 cooperative matrix each invocation holds, as the tensor-core
// kernels use them: KHR cooperative matrices leave that map to the implementation. One subgroup
// loads, from a shared matrix whose element (r, c) is 16r + c (exact in float16), an A matrix
// (row-major, as matmul_cm's token tiles), a B matrix (column-major: element (k, n) at n·16 + k,
// as its weight tiles) and a float accumulator (row-major), and writes element e of
// invocation l of matrix m to out[(m · 32 + l) · 16 + e] (the value 16r + c; -1 past the
// invocation's length, which is written to out[(96 + l) · 16 + m]).
layout(local_size_x = 32) in;
layout(std430, binding = 0) writeonly buffer O { float o[]; };

shared float16_t mh[256];
shared float mf[256];

void main()
{
    uint l = gl_SubgroupInvocationID;
    for (uint i = l; i < 256u; i += 32u) {
        mh[i] = float16_t(float(i));
        mf[i] = float(i);
    }
    barrier();
    coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA> a;
    coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB> b;
    coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator> c;
    coopMatLoad(a, mh, 0u, 16u, gl_CooperativeMatrixLayoutRowMajor);
    // B's element (k, n) is stored at n·16 + k: its value 16n + k names weight row n, column k
    coopMatLoad(b, mh, 0u, 16u, gl_CooperativeMatrixLayoutColumnMajor);
    coopMatLoad(c, mf, 0u, 16u, gl_CooperativeMatrixLayoutRowMajor);
    for (uint e = 0u; e < 16u; e++) {
        o[(0u * 32u + l) * 16u + e] = e < uint(a.length()) ? float(a[e]) : -1.0;
        o[(1u * 32u + l) * 16u + e] = e < uint(b.length()) ? float(b[e]) : -1.0;
        o[(2u * 32u + l) * 16u + e] = e < uint(c.length()) ? c[e] : -1.0;
    }
    if (l == 0u) {
        o[96u * 16u + 0u] = float(a.length());
        o[96u * 16u + 1u] = float(b.length());
        o[96u * 16u + 2u] = float(c.length());
    }
}
