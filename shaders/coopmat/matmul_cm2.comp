#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_NV_cooperative_matrix2 : require
#extension GL_EXT_buffer_reference : require
#extension GL_EXT_buffer_reference_uvec2 : require
#extension GL_EXT_shader_explicit_arithmetic_types : require
// matmul.comp on tensor cores through workgroup-scope cooperative matrices
// (VK_NV_cooperative_matrix2): the driver stages the operands through shared memory. The same
// modes, push constants and tile bookkeeping as matmul.comp (matmul_tile.glsl). A workgroup
// computes BM = 128 weight rows × BN token rows (BN = 64, 128 or 32: specialization constant 1,
// bits 0-1, as matmul_cm.comp) as one float32 accumulator C = W · xᵀ (BM × BN); the shared
// dimension advances BK = 32 columns a step:
//   A (BM × BK, float16): the weight tile W[m0 .. m0+BM)[k0 .. k0+BK) in its own row-major
//     layout (neighbouring elements of a row are neighbours in a block), each element decoded
//     from its quantization block by the type's decoder (Q4_K, Q6_K, Q5_0, Q8_0; in float32,
//     rounded to float16 once, as matmul_cm.comp's stash); rows past nrows read 0 (clamp mode
//     constant).
//   B (BK × BN, float16): the tile's x rows transposed by a tensor view and gathered through a
//     decode function: the layout is one block of BN × ncols, so the decoder sees (slot,
//     column) and reads x at the slot's row (slot_rows, kept in shared memory; an empty slot
//     reads 0) through a pointer built from the buffer's base.
// The result goes to y through a per-element function that writes each element at its slot's
// y row (any mode), or for plain and per-head products with 16-byte aligned y rows as a
// clamped, transposing tensor store.
// The host selects this pipeline only where the device offers VK_NV_cooperative_matrix2 with
// workgroup scope, flexible dimensions of this shape, tensor addressing, block loads and
// per-element operations, for those four types with 16-byte aligned weight slabs.
// Compiled by a glslang that knows GL_NV_cooperative_matrix2 (ci/glslang-coopmat.sh).
layout(constant_id = 1) const uint FLAGS = 0;
const uint TILE = FLAGS & 3u;
#define BM 128u
const uint BN = TILE == 1u ? 128u : TILE == 2u ? 32u : 64u;
#define BK 32u
layout(local_size_x = 256) in;

#include "../matmul_tile.glsl"

layout(std430, binding = 0) readonly buffer W4 { uvec4 w4[]; }; // weights, 16 bytes an element

// Quantization blocks as the decoders see them (byte layouts of gguf-spec.md).
layout(buffer_reference, std430, buffer_reference_align = 16) buffer BlkQ4K {
    uvec4 hdr; // d, dmin (float16 pair), then the 12 bytes of 6-bit scales and mins
    uint qs[32];
};
layout(buffer_reference, std430, buffer_reference_align = 2) buffer BlkQ6K {
    uint8_t ql[128];
    uint8_t qh[64];
    int8_t scales[16];
    float16_t d;
};
layout(buffer_reference, std430, buffer_reference_align = 2) buffer BlkQ50 {
    float16_t d;
    uint8_t qh[4];
    uint8_t qs[16];
};
layout(buffer_reference, std430, buffer_reference_align = 2) buffer BlkQ80 {
    float16_t d;
    int8_t qs[32];
};
layout(buffer_reference, std430, buffer_reference_align = 4) buffer F32Ref { float v; };

shared int sh_xrow[BN], sh_yrow[BN];
shared uint sh_xbase, sh_ybase, sh_m0;

// Two loads an element: the block's 16-byte header and the code word (k4_dm decodes the scale).
float16_t dec_q4k(const in BlkQ4K bl, const in uint32_t bc[2], const in uint32_t ib[2])
{
    uint i = ib[1], sub = i / 32u, j = i % 32u;
    float d, m;
    k4_dm(bl.hdr, sub, d, m);
    uint q = (bl.qs[8u * (sub / 2u) + j / 4u] >> (8u * (j % 4u) + 4u * (sub & 1u))) & 15u;
    return float16_t(d * float(q) - m);
}

float16_t dec_q6k(const in BlkQ6K bl, const in uint32_t bc[2], const in uint32_t ib[2])
{
    uint i = ib[1], h = i / 128u, k = (i / 32u) % 4u, l = i % 32u;
    uint lb = uint(bl.ql[64u * h + l + 32u * (k % 2u)]);
    uint lo = k < 2u ? lb & 15u : lb >> 4;
    uint hi = (uint(bl.qh[32u * h + l]) >> (2u * k)) & 3u;
    float dl = float(bl.d) * float(int(bl.scales[i / 16u]));
    return float16_t(dl * float(int(lo | (hi << 4)) - 32));
}

float16_t dec_q50(const in BlkQ50 bl, const in uint32_t bc[2], const in uint32_t ib[2])
{
    uint i = ib[1];
    uint qh = uint(bl.qh[0]) | (uint(bl.qh[1]) << 8) | (uint(bl.qh[2]) << 16) | (uint(bl.qh[3]) << 24);
    uint b = uint(bl.qs[i % 16u]);
    uint q = (i < 16u ? b & 15u : b >> 4) | (((qh >> i) & 1u) << 4);
    return float16_t(float(bl.d) * float(int(q) - 16));
}

float16_t dec_q80(const in BlkQ80 bl, const in uint32_t bc[2], const in uint32_t ib[2])
{
    return float16_t(float(bl.d) * float(int(bl.qs[ib[1]])));
}

// x element (slot ib[0], column ib[1]) of the tile: r points at x[0] (one block covers the
// whole BN × ncols layout, so every element gets the same pointer).
float16_t dec_x(const in F32Ref r, const in uint32_t bc[2], const in uint32_t ib[2])
{
    int xr = sh_xrow[ib[0]];
    if (xr < 0)
        return float16_t(0.0);
    uint off = 4u * (sh_xbase + uint(xr) * p.x_ld + ib[1]), carry;
    uvec2 a = uvec2(r);
    a.x = uaddCarry(a.x, off, carry);
    a.y += carry;
    return float16_t(F32Ref(a).v);
}

float put_y(const in uint32_t row, const in uint32_t col, const in float v)
{
    int yr = sh_yrow[col];
    uint m = sh_m0 + row;
    if (yr >= 0 && m < p.nrows)
        y[sh_ybase + uint(yr) * p.y_ld + m] = v;
    return v;
}

#define ACC coopmat<float, gl_ScopeWorkgroup, BM, BN, gl_MatrixUseAccumulator>

void main()
{
    uint wbase;
    if (!tile_rows(wbase))
        return;
    uint tid = gl_LocalInvocationID.x, m0 = gl_WorkGroupID.x * BM;
    if (tid < BN) {
        int xr, yr;
        slot_rows(tid, xr, yr);
        sh_xrow[tid] = xr;
        sh_yrow[tid] = yr;
    }
    if (tid == 0u) {
        sh_xbase = x_base;
        sh_ybase = y_base;
        sh_m0 = m0;
    }
    barrier();

    uint qk = TYPE == T_Q5_0 || TYPE == T_Q8_0 ? 32u : 256u;
    tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> tw =
        createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
    tw = setTensorLayoutBlockSizeNV(tw, 1, qk);
    tw = setTensorLayoutDimensionNV(tw, p.nrows, p.ncols);
    tensorLayoutNV<2> tx = createTensorLayoutNV(2);
    tx = setTensorLayoutBlockSizeNV(tx, BN, p.ncols);
    tx = setTensorLayoutDimensionNV(tx, BN, p.ncols);
    tensorViewNV<2, false, 1, 0> tr = createTensorViewNV(2, false, 1, 0);

    ACC acc = ACC(0.0);
    uint w16 = wbase / 16u;
    for (uint k0 = 0u; k0 < p.ncols; k0 += BK) {
        coopmat<float16_t, gl_ScopeWorkgroup, BM, BK, gl_MatrixUseA> a;
        if (TYPE == T_Q4_K)
            coopMatLoadTensorNV(a, w4, w16, sliceTensorLayoutNV(tw, m0, BM, k0, BK), dec_q4k);
        else if (TYPE == T_Q6_K)
            coopMatLoadTensorNV(a, w4, w16, sliceTensorLayoutNV(tw, m0, BM, k0, BK), dec_q6k);
        else if (TYPE == T_Q5_0)
            coopMatLoadTensorNV(a, w4, w16, sliceTensorLayoutNV(tw, m0, BM, k0, BK), dec_q50);
        else
            coopMatLoadTensorNV(a, w4, w16, sliceTensorLayoutNV(tw, m0, BM, k0, BK), dec_q80);
        coopmat<float16_t, gl_ScopeWorkgroup, BK, BN, gl_MatrixUseB> b;
        coopMatLoadTensorNV(b, x, 0, sliceTensorLayoutNV(tx, 0, BN, k0, BK), tr, dec_x);
        acc = coopMatMulAdd(a, b, acc);
    }

    if ((p.mode == 0u || p.mode == 3u) && (p.pad & 2u) != 0u) {
        // rows past the product's tokens and columns past nrows are dropped by the clamp
        tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> ty =
            createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
        ty = setTensorLayoutDimensionNV(ty, tile_count, p.nrows);
        ty = setTensorLayoutStrideNV(ty, p.y_ld, 1);
        coopMatStoreTensorNV(acc, y, y_base, sliceTensorLayoutNV(ty, tile_n0, BN, m0, BM), tr);
    } else {
        ACC done;
        coopMatPerElementNV(done, acc, put_y);
    }
}
