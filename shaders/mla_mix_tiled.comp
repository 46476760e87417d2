#version 450
#extension GL_EXT_control_flow_attributes : require
// The probability-weighted latent u = P·c of one prefill run (model-spec §2.5), after
// mla_scores_tiled.comp and softmax.comp: P [T·H][s_ld], keys read through the run's pages
// as there. A tiled product: a workgroup computes 64 rows (t·H + h) × 64 latent channels,
// staging 32 cache positions of P and c at a time in shared memory (float32); each
// invocation owns 4 × 4 outputs. Positions past the tile's last causal position are not
// visited; inside it, softmax has already made the masked probabilities exactly 0. Split over
// the positions where a row block has few tiles (decode rows at depth): workgroup z takes
// positions [z·chunk, z·chunk + chunk) (chunk a multiple of 32) and writes its partial sum at
// u_off + z·part_ld, which mla_reduce.comp adds up; one split writes u itself (z = 0).
// Push constants mirror glm_vk_mla_mix_push (vk/ops.h).
layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer S { float s[]; };  // [T*H][s_ld]
layout(std430, binding = 1) readonly buffer C { float c[]; };  // pool rows, c at c_off + row*c_ld
layout(std430, binding = 2) readonly buffer POS { int pos[]; };
layout(std430, binding = 3) readonly buffer PT { int ptab[]; };
layout(std430, binding = 4) readonly buffer PG { int pages[]; };
layout(std430, binding = 5) writeonly buffer U { float u[]; }; // [T*H][Rkv]

layout(push_constant) uniform P {
    uint T, H, rkv, s_ld;
    uint c_off, c_ld, s_off, u_off;
    uint pos_off, ptab_off, pages_off, page_size;
    uint pack16, c16_off, c16_ld; // for mla_mix_cm.comp only: 0 here
    uint chunk, part_ld, pad0, pad1, pad2;
} p;

shared float as[32][65]; // as[j][r]: P[r0 + r][j0 + j]
shared float bs[32][65]; // bs[j][k]: c[j0 + j][k0 + k]

void main()
{
    uint tid = gl_LocalInvocationID.x;
    uint k0 = gl_WorkGroupID.x * 64u, r0 = gl_WorkGroupID.y * 64u, rows = p.T * p.H;
    uint tk = tid % 16u, tr = tid / 16u;
    uint rlast = min(r0 + 63u, rows - 1u);
    uint pos0 = uint(pos[p.pos_off]), pt = p.pages_off + uint(ptab[p.ptab_off]);
    uint jend = pos0 + rlast / p.H + 1u; // ≤ pos0 + T: held positions only
    uint jz = gl_WorkGroupID.z * p.chunk, u_off = p.u_off + gl_WorkGroupID.z * p.part_ld;
    jend = min(jend, jz + p.chunk); // this split's positions: [jz, jend), maybe none
    float acc[4][4];
    [[unroll]] for (uint a = 0u; a < 4u; a++)
        [[unroll]] for (uint b = 0u; b < 4u; b++)
            acc[a][b] = 0.0;
    uint ar = tid / 4u, aq = 8u * (tid % 4u);  // P loader: row ar, positions aq .. aq+7
    uint bj = tid / 8u, bq = 8u * (tid % 8u);  // c loader: position bj, channels bq .. bq+7
    for (uint j0 = jz; j0 < jend; j0 += 32u) {
        uint cj = min(j0 + bj, jend - 1u);
        uint crow = uint(pages[pt + cj / p.page_size]) * p.page_size + cj % p.page_size;
        // loads from clamped (always valid) places, zeroed by selects: no branch separates a
        // step's loads, so all of them are in flight before the first is used
        [[unroll]] for (uint e = 0u; e < 8u; e++) {
            uint j = j0 + aq + e, row = r0 + ar, jb = j0 + bj, k = k0 + bq + e;
            float sv = s[p.s_off + min(row, rows - 1u) * p.s_ld + min(j, jend - 1u)];
            float cv = c[p.c_off + crow * p.c_ld + min(k, p.rkv - 1u)];
            as[aq + e][ar] = row < rows && j < jend ? sv : 0.0;
            bs[bj][bq + e] = jb < jend && k < p.rkv ? cv : 0.0;
        }
        barrier();
        [[unroll]] for (uint jj = 0u; jj < 32u; jj++) {
            float x[4], y[4];
            [[unroll]] for (uint a = 0u; a < 4u; a++) {
                x[a] = as[jj][tr + 16u * a];
                y[a] = bs[jj][tk + 16u * a];
            }
            [[unroll]] for (uint a = 0u; a < 4u; a++)
                [[unroll]] for (uint b = 0u; b < 4u; b++)
                    acc[a][b] += x[a] * y[b];
        }
        barrier();
    }
    [[unroll]] for (uint a = 0u; a < 4u; a++)
        [[unroll]] for (uint b = 0u; b < 4u; b++) {
            uint row = r0 + tr + 16u * a, k = k0 + tk + 16u * b;
            if (row < rows && k < p.rkv)
                u[u_off + row * p.rkv + k] = acc[a][b];
        }
}
