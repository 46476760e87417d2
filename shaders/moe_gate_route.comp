#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : require
// The MoE router's product and the routing in one dispatch: for token t (gl_WorkGroupID.y),
// workgroup x computes the logits of experts GATE_EPW·x .. GATE_EPW·x + GATE_EPW - 1,
//   logits[t][e] = W_e · RMSNorm(x[t]; g, eps)
// (the norm as matvec.comp folds it: the products of g ⊙ x scaled by 1/sqrt(mean(x²) + eps) at
// the end; W rows and g are plain F32/F16/BF16 rows, their types fixed per pipeline by
// constant_id 0 = the rows' type, 1 = the gain's (0 F32, 1 F16, 2 BF16) + 3 × the bias's class)
// and writes them; the
// last of the token's workgroups to finish (an atomic count per token, reset by that
// workgroup) then routes them with moe_route.glsl, as moe_route.comp would. The count buffer
// holds zeros between dispatches.
// With p.has_xn the dispatch also writes the normed row itself (with has_xn & 2 also in the
// 8-bit form of quant_x8.comp, rows of ncols / 2 words from word x8_off of
// binding 9, for matvec_q8.comp; ncols a multiple of 256 then), xn[t] = g ⊙ x[t] / sqrt(mean(x²)
// + eps), for the products that follow (the routed experts' gate and up read it instead of
// norming x once per workgroup): workgroup x writes columns x·ROUTE_WG + tid (+ every
// ROUTE_WG · workgroups) once its sum of squares is known.
// Decode is latency-bound here (0.5 MB of F32 rows): each invocation issues all the loads of a
// pass (GATE_CPI columns of x, g and its rows) before it adds, and every workgroup loads its
// share of the bias for the route up front, so the dispatch waits on memory about twice (the
// product, then the other workgroups' logits), not once per column step.
// Push constants mirror glm_vk_moe_gate_route_push in src/backend/vk/ops.h; GATE_EPW mirrors
// GLM_VK_GATE_EPW in src/backend/vk/ops.c.
#define ROUTE_WG 256u
layout(local_size_x = ROUTE_WG) in;
layout(constant_id = 0) const uint RTYPE = 0; // T_F32, T_F16 or T_BF16
layout(constant_id = 1) const uint GSEL3 = 0; // the gain's type + 3 × the bias's class (below)
const uint GSEL = GSEL3 % 16u % 3u;
// Measurement switches (GLM_VK_ROUTER_EXP, bits of GSEL3 / 16; the results are wrong): 1 no
// routing (the last workgroup stops), 2 no normed x written, 4 no router rows loaded (x alone),
// 8 no count (every workgroup stops after its logits), 16 one expert a workgroup (a right result)
const uint REXP = GSEL3 / 16u;
// the correction bias: 0 F32, 1 F16, 2 BF16, 3 another type (moe_route.glsl reads the first
// three without dequant.glsl's every-type switch: a smaller binary, bench/RESULTS.md)
#define ROUTE_BIAS_CLASS (GSEL3 % 16u / 3u)

layout(std430, binding = 0) coherent buffer L { float logits[]; };
layout(std430, binding = 1) readonly buffer W { uint w[]; }; // bias in its file type
layout(std430, binding = 2) writeonly buffer I { int ids[]; };
layout(std430, binding = 3) writeonly buffer G { float wts[]; };
layout(std430, binding = 4) readonly buffer X { float x[]; };
layout(std430, binding = 5) readonly buffer RW { uint rw[]; }; // router rows
layout(std430, binding = 6) readonly buffer NG { uint ng[]; }; // norm gain
layout(std430, binding = 7) coherent buffer C { uint cnt[]; };
layout(std430, binding = 8) writeonly buffer XN { float xn[]; };
layout(std430, binding = 9) writeonly buffer X8W { uint x8w[]; }; // has_xn & 2: xn in 8 bits too
layout(std430, binding = 9) writeonly buffer X8F { float x8f[]; };

layout(push_constant) uniform P {
    uint n_exp, k, n_group, topk_group;
    uint sigmoid_gate, norm_topk, has_bias, bias_type;
    uint bias_offset, l_off, l_ld, rows;
    uint ids_off, ids_ld, w_off, w_ld;
    float scale;
    uint has_xn, extra, x8_off;
    uint x_off, x_ld, ncols, rw_offset;
    uint rw_row_bytes, rw_type, g_offset, g_type;
    float eps;
    uint c_off, xn_off, xn_ld;
} p;

#include "dequant.glsl"
#include "moe_route.glsl"
#define X8_WG ROUTE_WG
#include "x8.glsl"

const uint GATE_EPW = (REXP & 16u) != 0u ? 1u : 2u; // experts per workgroup (REXP 16: 1, a measurement)
#define GATE_CPI 8u // columns per invocation and pass

const uint GTYPE = GSEL == 0u ? T_F32 : GSEL == 1u ? T_F16 : T_BF16;

// Element i of a plain row (F32, F16 or BF16) at a 4-byte aligned byte offset of a uint buffer.
#define PLAIN(buf, off, type, i)                                                                    \
    ((type) == T_F32 ? uintBitsToFloat(buf[((off) >> 2) + (i)])                                     \
                     : plain16(buf[((off) >> 2) + ((i) >> 1)], (i), (type)))

float plain16(uint word, uint i, uint type)
{
    uint h = (i & 1u) != 0u ? word >> 16 : word & 0xFFFFu;
    return type == T_BF16 ? uintBitsToFloat(h << 16) : unpackHalf2x16(h).x;
}

shared float part[GATE_EPW + 1u][64];
shared bool last;
shared float rnorm;

void main()
{
    uint t = gl_WorkGroupID.y, tid = gl_LocalInvocationID.x, e0 = gl_WorkGroupID.x * GATE_EPW;
    if (t >= p.rows)
        return;
    route_bias(tid);
    uint xo = p.x_off + t * p.x_ld;
    uint ro[GATE_EPW];
    float acc[GATE_EPW];
    [[unroll]] for (uint j = 0u; j < GATE_EPW; j++) {
        ro[j] = p.rw_offset + min(e0 + j, p.n_exp - 1u) * p.rw_row_bytes; // past the last: a repeat, dropped
        acc[j] = 0.0;
    }
    float sq = 0.0;
    for (uint c0 = 0u; c0 < p.ncols; c0 += ROUTE_WG * GATE_CPI) {
        // every load of the pass first (columns past the end read the last one, then count 0)
        float xv[GATE_CPI], gv[GATE_CPI], wv[GATE_EPW][GATE_CPI];
        [[unroll]] for (uint u = 0u; u < GATE_CPI; u++) {
            uint i = min(c0 + u * ROUTE_WG + tid, p.ncols - 1u);
            xv[u] = x[xo + i];
            gv[u] = PLAIN(ng, p.g_offset, GTYPE, i);
            [[unroll]] for (uint j = 0u; j < GATE_EPW; j++)
                wv[j][u] = (REXP & 4u) != 0u ? xv[u] : PLAIN(rw, ro[j], RTYPE, i);
        }
        [[unroll]] for (uint u = 0u; u < GATE_CPI; u++) {
            float xu = c0 + u * ROUTE_WG + tid < p.ncols ? xv[u] : 0.0;
            sq += xu * xu;
            float xg = gv[u] * xu;
            [[unroll]] for (uint j = 0u; j < GATE_EPW; j++)
                acc[j] += wv[j][u] * xg;
        }
    }
    // sums over the workgroup: per subgroup, then the subgroups' totals in order; invocation 0
    // writes the logits and counts the workgroup in
    sq = subgroupAdd(sq);
    [[unroll]] for (uint j = 0u; j < GATE_EPW; j++)
        acc[j] = subgroupAdd(acc[j]);
    if (subgroupElect()) {
        part[GATE_EPW][gl_SubgroupID] = sq;
        [[unroll]] for (uint j = 0u; j < GATE_EPW; j++)
            part[j][gl_SubgroupID] = acc[j];
    }
    barrier();
    if (tid == 0u) {
        float tot = 0.0, d[GATE_EPW];
        [[unroll]] for (uint j = 0u; j < GATE_EPW; j++)
            d[j] = 0.0;
        for (uint sg = 0u; sg < gl_NumSubgroups; sg++) {
            tot += part[GATE_EPW][sg];
            [[unroll]] for (uint j = 0u; j < GATE_EPW; j++)
                d[j] += part[j][sg];
        }
        float r = 1.0 / sqrt(tot / float(p.ncols) + p.eps);
        rnorm = r;
        [[unroll]] for (uint j = 0u; j < GATE_EPW; j++)
            if (e0 + j < p.n_exp)
                logits[p.l_off + t * p.l_ld + e0 + j] = d[j] * r;
        // the logits out before the count; the last workgroup sees every other one's
        memoryBarrierBuffer();
        uint done = (REXP & 8u) != 0u ? 0u : atomicAdd(cnt[p.c_off + t], 1u);
        last = (REXP & 8u) == 0u && done == gl_NumWorkGroups.x - 1u;
        if (last)
            cnt[p.c_off + t] = 0u;
    }
    barrier();
    // the loop's trip count is the workgroup's, not the invocation's, so that the workgroup's
    // control flow stays uniform up to the routing's barriers (lavapipe cut the last workgroup's
    // routing short now and then when a row's tail made this loop divergent)
    if (p.has_xn != 0u && (REXP & 2u) == 0u)
        for (uint i0 = gl_WorkGroupID.x * ROUTE_WG; i0 < p.ncols; i0 += gl_NumWorkGroups.x * ROUTE_WG) {
            uint i = i0 + tid;
            float v = i < p.ncols ? PLAIN(ng, p.g_offset, GTYPE, i) * x[xo + i] * rnorm : 0.0;
            if (i < p.ncols)
                xn[p.xn_off + t * p.xn_ld + i] = v;
            // (ncols a multiple of ROUTE_WG here: every invocation has a column)
            if ((p.has_xn & 2u) != 0u)
                x8_quant(tid, v, p.x8_off + t * (p.ncols / 2u), p.ncols, i0);
        }
    if (!last || (REXP & 1u) != 0u)
        return;
    memoryBarrierBuffer();
    route(t, tid);
}
