#version 450
// ids[r] = argmax of row r, ties to the lower index, NaN never wins: one workgroup per row,
// per-invocation scan (512 invocations: a vocabulary row of 151,552 is ~300 loads each) then a
// shared-memory reduction on (value, index). The columns listed in
// mask[0 .. n_mask) count as -inf (a sampler's banned ids).
// Push constants mirror glm_vk_argmax_push in src/backend/vk/ops.h.
#define WG 512u
layout(local_size_x = 512) in;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer I { int ids[]; };

layout(push_constant) uniform P {
    uint rows, cols, x_off, x_ld;
    uint n_mask, pad0, pad1, pad2;
    uvec4 mask[2];
} p;

bool masked(uint i)
{
    bool m = false;
    for (uint k = 0u; k < p.n_mask; k++)
        m = m || p.mask[k / 4u][k % 4u] == i;
    return m;
}

shared float bv[WG];
shared int bi[WG];

bool better(float v, int i, float w, int j)
{
    // v at index i beats w at index j
    if (isnan(v)) return false;
    if (j < 0 || isnan(w)) return true;
    return v > w || (v == w && i < j);
}

void main()
{
    uint r = gl_WorkGroupID.x, tid = gl_LocalInvocationID.x;
    if (r >= p.rows)
        return;
    float best = 0.0;
    int bidx = -1;
    for (uint i = tid; i < p.cols; i += WG) {
        float v = masked(i) ? -1.0 / 0.0 : x[p.x_off + r * p.x_ld + i];
        if (better(v, int(i), best, bidx)) {
            best = v;
            bidx = int(i);
        }
    }
    bv[tid] = best;
    bi[tid] = bidx;
    barrier();
    for (uint s = WG / 2u; s > 0u; s >>= 1) {
        if (tid < s && bi[tid + s] >= 0 && better(bv[tid + s], bi[tid + s], bv[tid], bi[tid])) {
            bv[tid] = bv[tid + s];
            bi[tid] = bi[tid + s];
        }
        barrier();
    }
    if (tid == 0u)
        ids[r] = bi[0] < 0 ? 0 : bi[0];
}
