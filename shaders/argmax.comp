#version 450
// ids[r] = argmax of row r, ties to the lower index, NaN never wins: one workgroup per row,
// per-invocation scan then a shared-memory reduction on (value, index). The columns listed in
// mask[0 .. n_mask) count as -inf (a sampler's banned ids).
// Push constants mirror glm_vk_argmax_push in src/backend/vk/ops.h.
layout(local_size_x = 64) in;

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

shared float bv[64];
shared int bi[64];

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
    for (uint i = tid; i < p.cols; i += 64u) {
        float v = masked(i) ? -1.0 / 0.0 : x[p.x_off + r * p.x_ld + i];
        if (better(v, int(i), best, bidx)) {
            best = v;
            bidx = int(i);
        }
    }
    bv[tid] = best;
    bi[tid] = bidx;
    barrier();
    for (uint s = 32u; s > 0u; s >>= 1) {
        if (tid < s && bi[tid + s] >= 0 && better(bv[tid + s], bi[tid + s], bv[tid], bi[tid])) {
            bv[tid] = bv[tid + s];
            bi[tid] = bi[tid + s];
        }
        barrier();
    }
    if (tid == 0u)
        ids[r] = bi[0] < 0 ? 0 : bi[0];
}
