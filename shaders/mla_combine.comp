#version 450
// Merge of mla_split.comp's partials: for query row r = t·H + h with splits s < nsplit(pos[t]),
// M = max m_s, L = Σ l_s exp(m_s - M), u[k] = Σ u_s[k] exp(m_s - M) / L, in split order.
// u is the probability-weighted latent of absorbed MLA (model-spec §2.5). One invocation per
// (k, r). Push constants mirror glm_vk_mla_combine_push in src/backend/vk/ops.h.
layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer PART { float part[]; }; // [rows*H][split_ld][Rkv + 2]
layout(std430, binding = 1) readonly buffer POS { int pos[]; };
layout(std430, binding = 2) writeonly buffer U { float u[]; };       // [T*H][Rkv]

layout(push_constant) uniform P {
    uint rows, H, rkv, max_split;
    uint split_ld, part_off, u_off, pos_off;
    uint pos_ld, row0, pad0, pad1;
} p;

const uint MIN_CHUNK = 64u;

void main()
{
    uint k = gl_GlobalInvocationID.x, rl = gl_WorkGroupID.y;
    if (k >= p.rkv || rl >= p.rows * p.H)
        return;
    uint t = p.row0 + rl / p.H, h = rl % p.H;
    uint len = uint(pos[p.pos_off + t * p.pos_ld]) + 1u;
    uint nsplit = min(p.max_split, (len + MIN_CHUNK - 1u) / MIN_CHUNK);
    uint pb = p.part_off + rl * p.split_ld * (p.rkv + 2u);
    float M = -1.0 / 0.0;
    for (uint s = 0u; s < nsplit; s++)
        M = max(M, part[pb + s * (p.rkv + 2u)]);
    float L = 0.0, a = 0.0;
    for (uint s = 0u; s < nsplit; s++) {
        uint b = pb + s * (p.rkv + 2u);
        float w = exp(part[b] - M);
        L += part[b + 1u] * w;
        a += part[b + 2u + k] * w;
    }
    u[p.u_off + (t * p.H + h) * p.rkv + k] = a / L;
}
