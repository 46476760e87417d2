#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : require
// The MoE router's product and the routing in one dispatch: for token t (gl_WorkGroupID.y),
// workgroup x computes the logits of experts 4x .. 4x + 3,
//   logits[t][e] = W_e · RMSNorm(x[t]; g, eps)
// (the norm as matvec.comp folds it: the products of g ⊙ x scaled by 1/sqrt(mean(x²) + eps) at
// the end; W rows and g are plain F32/F16/BF16 rows) and writes them; the last of the token's
// workgroups to finish (an atomic count per token, reset by that workgroup) then routes them
// with moe_route.glsl, as moe_route.comp would. The count buffer holds zeros between dispatches.
// Push constants mirror glm_vk_moe_gate_route_push in src/backend/vk/ops.h.
layout(local_size_x = 64) in;

layout(std430, binding = 0) coherent buffer L { float logits[]; };
layout(std430, binding = 1) readonly buffer W { uint w[]; }; // bias in its file type
layout(std430, binding = 2) writeonly buffer I { int ids[]; };
layout(std430, binding = 3) writeonly buffer G { float wts[]; };
layout(std430, binding = 4) readonly buffer X { float x[]; };
layout(std430, binding = 5) readonly buffer RW { uint rw[]; }; // router rows
layout(std430, binding = 6) readonly buffer NG { uint ng[]; }; // norm gain
layout(std430, binding = 7) coherent buffer C { uint cnt[]; };

layout(push_constant) uniform P {
    uint n_exp, k, n_group, topk_group;
    uint sigmoid_gate, norm_topk, has_bias, bias_type;
    uint bias_offset, l_off, l_ld, rows;
    uint ids_off, ids_ld, w_off, w_ld;
    float scale;
    uint pad0, pad1, pad2;
    uint x_off, x_ld, ncols, rw_offset;
    uint rw_row_bytes, rw_type, g_offset, g_type;
    float eps;
    uint c_off, pad3, pad4;
} p;

#include "dequant.glsl"
#include "moe_route.glsl"

#define EPW 4u // experts per workgroup

// Element i of a plain row (F32, F16 or BF16) at a 4-byte aligned byte offset of a uint buffer.
#define PLAIN(buf, off, type, i)                                                                    \
    ((type) == T_F32 ? uintBitsToFloat(buf[((off) >> 2) + (i)])                                     \
                     : plain16(buf[((off) >> 2) + ((i) >> 1)], (i), (type)))

float plain16(uint word, uint i, uint type)
{
    uint h = (i & 1u) != 0u ? word >> 16 : word & 0xFFFFu;
    return type == T_BF16 ? uintBitsToFloat(h << 16) : unpackHalf2x16(h).x;
}

shared float part[EPW + 1u][64];
shared bool last;

void main()
{
    uint t = gl_WorkGroupID.y, tid = gl_LocalInvocationID.x, e0 = gl_WorkGroupID.x * EPW;
    if (t >= p.rows)
        return;
    uint xo = p.x_off + t * p.x_ld;
    float acc[EPW];
    [[unroll]] for (uint j = 0u; j < EPW; j++)
        acc[j] = 0.0;
    float sq = 0.0;
    for (uint i = tid; i < p.ncols; i += 64u) {
        float xv = x[xo + i];
        sq += xv * xv;
        float xg = PLAIN(ng, p.g_offset, p.g_type, i) * xv;
        [[unroll]] for (uint j = 0u; j < EPW; j++) {
            uint e = min(e0 + j, p.n_exp - 1u); // past the last expert: a repeat, dropped
            acc[j] += PLAIN(rw, p.rw_offset + e * p.rw_row_bytes, p.rw_type, i) * xg;
        }
    }
    // sums over the workgroup: per subgroup, then the subgroups' totals in order
    sq = subgroupAdd(sq);
    [[unroll]] for (uint j = 0u; j < EPW; j++)
        acc[j] = subgroupAdd(acc[j]);
    if (subgroupElect()) {
        part[EPW][gl_SubgroupID] = sq;
        [[unroll]] for (uint j = 0u; j < EPW; j++)
            part[j][gl_SubgroupID] = acc[j];
    }
    barrier();
    if (tid < EPW && e0 + tid < p.n_exp) {
        float tot = 0.0, d = 0.0;
        for (uint sg = 0u; sg < gl_NumSubgroups; sg++) {
            tot += part[EPW][sg];
            d += part[tid][sg];
        }
        logits[p.l_off + t * p.l_ld + e0 + tid] = d * (1.0 / sqrt(tot / float(p.ncols) + p.eps));
    }
    // the logits out before the count; the last workgroup sees every other one's
    memoryBarrierBuffer();
    barrier();
    if (tid == 0u) {
        uint done = atomicAdd(cnt[p.c_off + t], 1u);
        last = done == gl_NumWorkGroups.x - 1u;
        if (last)
            cnt[p.c_off + t] = 0u;
    }
    barrier();
    if (!last)
        return;
    memoryBarrierBuffer();
    route(t, tid);
}
