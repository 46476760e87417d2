#version 450
// Groups routed (token, slot) pairs by expert for the grouped matmul (matmul.comp modes 1
// and 2): from ids [T][k] it writes, at g_off of the output, counts[E], offsets[E] (exclusive
// prefix sums of counts), tiles[E+1] (exclusive prefix sums of ceil(count / tile)) and the
// list of pair indices v = t·k + j ordered by expert. One
// workgroup; the order of pairs inside an expert is whatever the atomics give, which does not
// change any result (each output row is computed on its own). Ids outside [0, E) are left out.
// Push constants mirror glm_vk_moe_group_push in src/backend/vk/ops.h.
layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer I { int ids[]; };
layout(std430, binding = 1) buffer G { int g[]; };

layout(push_constant) uniform P {
    uint T, k, n_exp, ids_off, ids_ld, g_off, tile, pad;
} p;

shared uint cnt[256];
shared uint fill[256];

void main()
{
    uint tid = gl_LocalInvocationID.x;
    uint npairs = p.T * p.k;
    cnt[tid] = 0u;
    fill[tid] = 0u;
    barrier();
    for (uint v = tid; v < npairs; v += 256u) {
        int e = ids[p.ids_off + (v / p.k) * p.ids_ld + v % p.k];
        if (e >= 0 && uint(e) < p.n_exp)
            atomicAdd(cnt[e], 1u);
    }
    barrier();
    if (tid == 0u) {
        uint s = 0u, t = 0u;
        for (uint e = 0u; e < p.n_exp; e++) {
            fill[e] = s;
            s += cnt[e];
            g[p.g_off + 2u * p.n_exp + e] = int(t);
            t += (cnt[e] + p.tile - 1u) / p.tile;
        }
        g[p.g_off + 3u * p.n_exp] = int(t);
    }
    barrier();
    if (tid < p.n_exp) {
        g[p.g_off + tid] = int(cnt[tid]);
        g[p.g_off + p.n_exp + tid] = int(fill[tid]);
    }
    barrier();
    for (uint v = tid; v < npairs; v += 256u) {
        int e = ids[p.ids_off + (v / p.k) * p.ids_ld + v % p.k];
        if (e >= 0 && uint(e) < p.n_exp) {
            uint at = atomicAdd(fill[e], 1u);
            g[p.g_off + 3u * p.n_exp + 1u + at] = int(v);
        }
    }
}
