#version 450
#extension GL_GOOGLE_include_directive : require
// MoE router for one token per workgroup (model-spec §3.2), mirroring ref/moe.c:
// scores s = sigmoid(z) (or softmax over E), selection on s + bias (bias only chooses),
// group limit (groups outside the topk_group best, scored by the sum of their two largest
// selection scores, are dropped), top-k with ties to the lower index, weights from the
// unbiased s, normalized over the k (+1e-20) when norm_topk_prob, then x scaling.
// ids are written ascending with their weights in the same order. E <= 256.
// Scores, group scores and each of the k arg-max rounds run across the 64 invocations (a
// shared-memory tree over (score, index) pairs); the softmax sums and the final sort of
// the k ids stay sequential.
// Push constants mirror glm_vk_moe_route_push in src/backend/vk/ops.h.
layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer L { float logits[]; };
layout(std430, binding = 1) readonly buffer W { uint w[]; }; // bias in its file type
layout(std430, binding = 2) writeonly buffer I { int ids[]; };
layout(std430, binding = 3) writeonly buffer G { float wts[]; };

layout(push_constant) uniform P {
    uint n_exp, k, n_group, topk_group;
    uint sigmoid_gate, norm_topk, has_bias, bias_type;
    uint bias_offset, l_off, l_ld, rows;
    uint ids_off, ids_ld, w_off, w_ld;
    float scale;
    uint pad0, pad1, pad2;
} p;

#include "dequant.glsl"

shared float s[256];
shared float sel[256];
shared bool taken[256];
shared float gscore[32];
shared uint keep; // bitmask of kept groups (n_group <= 32)
shared float bv[64];
shared uint bi[64];
shared uint chosen[8];

void main()
{
    uint t = gl_WorkGroupID.x;
    uint tid = gl_LocalInvocationID.x;
    if (t >= p.rows)
        return;
    uint lb = p.l_off + t * p.l_ld;
    uint bb = blk_bytes(p.bias_type);
    if (p.sigmoid_gate != 0u) {
        for (uint e = tid; e < p.n_exp; e += 64u)
            s[e] = 1.0 / (1.0 + exp(-logits[lb + e]));
    } else if (tid == 0u) {
        float mx = logits[lb];
        for (uint e = 1u; e < p.n_exp; e++)
            mx = max(mx, logits[lb + e]);
        float sum = 0.0;
        for (uint e = 0u; e < p.n_exp; e++) {
            s[e] = exp(logits[lb + e] - mx);
            sum += s[e];
        }
        for (uint e = 0u; e < p.n_exp; e++)
            s[e] /= sum;
    }
    barrier();
    for (uint e = tid; e < p.n_exp; e += 64u) {
        sel[e] = s[e] + (p.has_bias != 0u ? dequant(p.bias_type, p.bias_offset + e * bb, 0u) : 0.0);
        taken[e] = false;
    }
    barrier();
    // group limit
    if (p.n_group > 1u) {
        uint gs = p.n_exp / p.n_group;
        if (tid < p.n_group) {
            float m1 = -1.0 / 0.0, m2 = -1.0 / 0.0;
            for (uint e = tid * gs; e < (tid + 1u) * gs; e++) {
                float v = sel[e];
                if (v > m1) { m2 = m1; m1 = v; } else if (v > m2) { m2 = v; }
            }
            gscore[tid] = gs >= 2u ? m1 + m2 : m1;
        }
        barrier();
        if (tid == 0u) {
            uint kp = 0u;
            for (uint n = 0u; n < p.topk_group; n++) {
                int best = -1;
                for (uint g = 0u; g < p.n_group; g++)
                    if ((kp & (1u << g)) == 0u && (best < 0 || gscore[g] > gscore[uint(best)]))
                        best = int(g);
                kp |= 1u << uint(best);
            }
            keep = kp;
        }
        barrier();
        for (uint e = tid; e < p.n_exp; e += 64u)
            if ((keep & (1u << (e / gs))) == 0u)
                sel[e] = -1.0 / 0.0;
        barrier();
    }
    // top-k, ties to the lower index: k arg-max rounds over the experts not taken yet
    for (uint n = 0u; n < p.k; n++) {
        float v = 0.0;
        uint idx = 0xFFFFFFFFu;
        for (uint e = tid; e < p.n_exp; e += 64u)
            if (!taken[e] && (idx == 0xFFFFFFFFu || sel[e] > v)) {
                v = sel[e];
                idx = e;
            }
        bv[tid] = v;
        bi[tid] = idx;
        barrier();
        for (uint h = 32u; h > 0u; h >>= 1) {
            if (tid < h) {
                float v2 = bv[tid + h];
                uint i2 = bi[tid + h];
                if (i2 != 0xFFFFFFFFu && (bi[tid] == 0xFFFFFFFFu || v2 > bv[tid] || (v2 == bv[tid] && i2 < bi[tid]))) {
                    bv[tid] = v2;
                    bi[tid] = i2;
                }
            }
            barrier();
        }
        if (tid == 0u) {
            chosen[n] = bi[0];
            taken[bi[0]] = true;
        }
        barrier();
    }
    if (tid == 0u) {
        // ascending order of ids
        for (uint a = 1u; a < p.k; a++) {
            uint v = chosen[a];
            int b = int(a) - 1;
            while (b >= 0 && chosen[uint(b)] > v) {
                chosen[uint(b) + 1u] = chosen[uint(b)];
                b--;
            }
            chosen[uint(b + 1)] = v;
        }
        float denom = 0.0;
        for (uint n = 0u; n < p.k; n++)
            denom += s[chosen[n]];
        denom += 1e-20;
        for (uint n = 0u; n < p.k; n++) {
            float wv = s[chosen[n]];
            if (p.norm_topk != 0u)
                wv /= denom;
            ids[p.ids_off + t * p.ids_ld + n] = int(chosen[n]);
            wts[p.w_off + t * p.w_ld + n] = wv * p.scale;
        }
    }
}
