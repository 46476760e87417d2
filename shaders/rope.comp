#version 450
// In-place rotation of adjacent channel pairs (model-spec §2.4): for row t, head h, pair i,
// (x0, x1) <- (x0 c - x1 s, x1 c + x0 s) at position pos[t] (an int32 view, so rows of
// different sequences mix in one dispatch), with c, s read from a table computed on the host
// the way ref/rope.c computes them (so both paths use identical angles). A position past the
// table leaves its row as it is (the host checks the bound before recording).
// Push constants mirror glm_vk_rope_push in src/backend/vk/ops.h.
layout(local_size_x = 64) in;

layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer CS { float cs[]; }; // [pos][dim/2][2] = cos, sin
layout(std430, binding = 2) readonly buffer POS { int pos[]; };

layout(push_constant) uniform P {
    uint x_off, x_ld, rows, n_heads;
    uint head_dim, rope_off, rope_dim, pos_off;
    uint pos_ld, table_positions, pad0, pad1;
} p;

void main()
{
    uint half_dim = p.rope_dim / 2u;
    uint g = gl_GlobalInvocationID.x;
    uint t = gl_WorkGroupID.y;
    if (g >= half_dim * p.n_heads || t >= p.rows)
        return;
    int ps = pos[p.pos_off + t * p.pos_ld];
    if (ps < 0 || uint(ps) >= p.table_positions)
        return;
    uint h = g / half_dim, i = g % half_dim;
    uint b = p.x_off + t * p.x_ld + h * p.head_dim + p.rope_off + 2u * i;
    uint c = (uint(ps) * half_dim + i) * 2u;
    float c0 = cs[c], s0 = cs[c + 1u];
    float x0 = x[b], x1 = x[b + 1u];
    x[b] = x0 * c0 - x1 * s0;
    x[b + 1u] = x1 * c0 + x0 * s0;
}
