#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_EXT_control_flow_attributes : require
// Matrix-vector products of the decode hot types (Q4_K, Q5_K, Q6_K, Q8_0, Q5_0 and F32 with a
// multiple of 4 columns), the same products as matvec.comp (same push constants, bindings and
// modes) laid out for memory bandwidth; every other type and shape stays on matvec.comp.
// A row is cut into tasks of 32 elements (4 for F32): for the K types a task reads 16
// consecutive quant bytes of its block (the two nibbles of a byte belong to two sub-blocks),
// so the lanes of a block read it end to end; for Q8_0 and Q5_0 a task is a block. A slice of
// p.tpr lanes (a power of two, at most the subgroup size, chosen by the host from the task
// count) computes NR consecutive rows of one vector; lane l takes tasks l, l + tpr, ... in
// groups of U, issuing the weight loads of a group for all NR rows (and the SwiGLU partner)
// before the math. x is read straight from global memory as vec4 (it is small and stays in
// the caches): no shared memory and no barriers. Sums of a slice go through shuffles.
// The weight type is a specialization constant (one pipeline per type), as is FUSE.
//   mode 0: y[z][v][r] = W_{slab z}[r] · x[z][v]; modes 1/2: routed experts (matvec.comp)
// With p.norm, x is replaced by RMSNorm(x; g, eps): a slice reads the whole row of x once per
// row group, so it sums the squares itself and scales its sums by 1/sqrt(mean + eps).
// With p.accumulate, y += W·x. The host routes here only when x's offsets are multiples of
// 4 floats. Rows past nrows read the last row again (results dropped).
// Push constants mirror glm_vk_matvec_push in src/backend/vk/ops.h.
#define WG 128u
layout(local_size_x = 128) in;
layout(constant_id = 0) const uint TYPE = 0;
layout(constant_id = 1) const uint FUSE = 0;
#define NR 2u

layout(std430, binding = 0) readonly buffer W { uint w[]; };
layout(std430, binding = 0) readonly buffer W4 { uvec4 w4[]; };
layout(std430, binding = 1) readonly buffer X { vec4 x4[]; };
layout(std430, binding = 2) buffer Y { float y[]; };
layout(std430, binding = 3) readonly buffer I { int ids[]; };
layout(std430, binding = 4) readonly buffer G { uint g[]; };

layout(push_constant) uniform P {
    uint type, ncols, nrows, row_bytes;
    uint w_offset, slab_bytes, x_off, x_ld;
    uint y_off, y_ld, ids_off, ids_ld;
    uint k, mode, x_zs, y_zs;
    uint tpr, w2_offset, swiglu, norm;
    uint g_offset, g_type;
    float eps;
    uint accumulate;
} p;

#include "dequant.glsl"

const bool KQ = TYPE == T_Q4_K || TYPE == T_Q5_K || TYPE == T_Q6_K;
const uint EPT = TYPE == T_F32 ? 4u : 32u;     // elements per task
const uint U = TYPE == T_F32 ? 8u : 2u;        // tasks per lane whose loads go out together
const uint NX = TYPE == T_F32 ? 1u : 8u;       // vec4s of x per task

bool aligned16() { return ((p.w_offset | p.w2_offset | p.row_bytes | p.slab_bytes) & 15u) == 0u; }

// 16 bytes at an offset that is 16-aligned when aligned16().
uvec4 ld16(uint off)
{
    if (aligned16())
        return w4[off >> 4];
    uint i = off >> 2;
    return uvec4(w[i], w[i + 1u], w[i + 2u], w[i + 3u]);
}

// Word i, or the buffer's last word past its end (read only where its bytes are not used):
// the loads below are unconditional, so that a lane's loads can all be in flight together.
uint wcl(uint i) { return w[min(i, uint(w.length()) - 1u)]; }

// The 32-bit word of bytes [off, off + 4) from words a, b at byte offset off & ~3 (off even).
uint fun(uint a, uint b, uint off) { return (off & 2u) == 0u ? a : (a >> 16) | (b << 16); }

// 4 / 8 bytes at an even byte offset.
uint ld4e(uint off)
{
    uint i = off >> 2;
    return fun(w[i], wcl(i + 1u), off);
}
uvec2 ld8e(uint off)
{
    uint i = off >> 2;
    uint a = w[i], b = w[i + 1u], c = wcl(i + 2u);
    return uvec2(fun(a, b, off), fun(b, c, off));
}

// The float16 at an even byte offset.
float rdh(uint off) { return unpackHalf2x16(w[off >> 2] >> ((off & 2u) * 8u)).x; }

// The 4 bytes of q as floats (unsigned, or signed for Q8_0).
vec4 b4(uint q) { return vec4(uvec4(q, q >> 8, q >> 16, q >> 24) & 255u); }
vec4 s4(uint q) { return vec4(ivec4(q << 24, q << 16, q << 8, q) >> 24); }

// Element e of the row where the first vec4 of x for slot k (0..NX-1) of task t starts.
uint x_elem(uint t, uint k)
{
    if (TYPE == T_Q4_K || TYPE == T_Q5_K) {
        uint j = t & 7u; // sub-block pair j >> 1, half j & 1 of its 32 quant bytes
        return (t >> 3) * 256u + 64u * (j >> 1) + 16u * (j & 1u) + (k < 4u ? 4u * k : 32u + 4u * (k - 4u));
    }
    if (TYPE == T_Q6_K) {
        uint j = t & 7u; // half j >> 2 of the block, bytes 8·(j & 3) of its 32-byte runs
        return (t >> 3) * 256u + 128u * (j >> 2) + 8u * (j & 3u) + 32u * (k >> 1) + 4u * (k & 1u);
    }
    return t * EPT + 4u * k;
}

// Four gain elements from element i (a multiple of 4).
vec4 gain4(uint i)
{
    uint o = p.g_offset >> 2;
    if (p.g_type == T_F32)
        return uintBitsToFloat(uvec4(g[o + i], g[o + i + 1u], g[o + i + 2u], g[o + i + 3u]));
    uint a = g[o + (i >> 1)], b = g[o + (i >> 1) + 1u];
    if (p.g_type == T_BF16)
        return uintBitsToFloat(uvec4(a << 16, a & 0xFFFF0000u, b << 16, b & 0xFFFF0000u));
    return vec4(unpackHalf2x16(a), unpackHalf2x16(b));
}

// The 6-bit scale and min of sub-block s of a Q4_K/Q5_K block whose 12 scale bytes are s0..s2.
vec2 scmin(uint s0, uint s1, uint s2, uint s)
{
    uint sh = 8u * (s & 3u);
    if (s < 4u)
        return vec2(float((s0 >> sh) & 63u), float((s1 >> sh) & 63u));
    return vec2(float(((s2 >> sh) & 15u) | (((s0 >> (sh + 6u)) & 3u) << 4)),
                float(((s2 >> (sh + 4u)) & 15u) | (((s1 >> (sh + 6u)) & 3u) << 4)));
}

// Σ W[row at byte rb][task t] · x over the task's elements; xv as x_elem lays it out, xs the
// sums of its groups (Q4_K/Q5_K: the two nibble halves; Q6_K: four runs of 8; else the total).
float task_dot(uint rb, uint t, vec4 xv[8], vec4 xs)
{
    if (TYPE == T_Q4_K || TYPE == T_Q5_K) {
        bool q5 = TYPE == T_Q5_K;
        uint j = t & 7u, pr = j >> 1, hh = j & 1u;
        uint b = rb + (t >> 3) * (q5 ? 176u : 144u);
        uvec4 hd = ld16(b);
        uvec4 q = ld16(b + (q5 ? 48u : 16u) + 32u * pr + 16u * hh);
        uvec4 qh = q5 ? ld16(b + 16u + 16u * hh) : uvec4(0u);
        vec2 dm = unpackHalf2x16(hd.x);
        vec2 a = scmin(hd.y, hd.z, hd.w, 2u * pr), c = scmin(hd.y, hd.z, hd.w, 2u * pr + 1u);
        float lo = 0.0, hi = 0.0;
        [[unroll]] for (uint i = 0u; i < 4u; i++) {
            uint ql = q[i] & 0x0F0F0F0Fu, qu = (q[i] >> 4) & 0x0F0F0F0Fu;
            if (q5) {
                ql |= ((qh[i] >> (2u * pr)) & 0x01010101u) << 4;
                qu |= ((qh[i] >> (2u * pr + 1u)) & 0x01010101u) << 4;
            }
            lo += dot(b4(ql), xv[i]);
            hi += dot(b4(qu), xv[4u + i]);
        }
        return dm.x * (a.x * lo + c.x * hi) - dm.y * (a.y * xs.x + c.y * xs.y);
    } else if (TYPE == T_Q6_K) {
        uint j = t & 7u, h = j >> 2, l0 = 8u * (j & 3u);
        uint b = rb + (t >> 3) * 210u;
        uvec2 L1 = ld8e(b + 64u * h + l0), L2 = ld8e(b + 64u * h + 32u + l0), H = ld8e(b + 128u + 32u * h + l0);
        uvec2 sc = ld8e(b + 192u + 8u * h);
        float d = rdh(b + 208u);
        float acc = 0.0;
        [[unroll]] for (uint gi = 0u; gi < 4u; gi++) {
            uvec2 Lg = (gi & 1u) != 0u ? L2 : L1;
            uint ls = 4u * (gi >> 1), hs = 2u * gi;
            float s = 0.0;
            [[unroll]] for (uint i = 0u; i < 2u; i++)
                s += dot(b4(((Lg[i] >> ls) & 0x0F0F0F0Fu) | (((H[i] >> hs) & 0x03030303u) << 4)), xv[2u * gi + i]);
            uint si = 2u * gi + (l0 >> 4);
            float scale = float(sx8((sc[si >> 2] >> (8u * (si & 3u))) & 255u));
            acc += scale * (s - 32.0 * xs[gi]);
        }
        return d * acc;
    } else if (TYPE == T_Q8_0) {
        // 34-byte blocks at even offsets: words i..i+8 hold the scale and the 32 codes
        uint b = rb + t * 34u, i = b >> 2;
        uint wd[9];
        [[unroll]] for (uint k = 0u; k < 9u; k++)
            wd[k] = w[i + k];
        bool odd = (b & 2u) != 0u;
        float d = unpackHalf2x16(odd ? wd[0] >> 16 : wd[0]).x;
        float acc = 0.0;
        [[unroll]] for (uint k = 0u; k < 8u; k++)
            acc += dot(s4(odd ? wd[k + 1u] : (wd[k] >> 16) | (wd[k + 1u] << 16)), xv[k]);
        return d * acc;
    } else if (TYPE == T_Q5_0) {
        // 22-byte blocks at even offsets: words i..i+5 hold scale, high bits and codes
        uint b = rb + t * 22u, i = b >> 2;
        uint wd[6];
        [[unroll]] for (uint k = 0u; k < 6u; k++)
            wd[k] = w[i + k];
        bool odd = (b & 2u) != 0u;
        float d = unpackHalf2x16(odd ? wd[0] >> 16 : wd[0]).x;
        uint qh = odd ? wd[1] : (wd[0] >> 16) | (wd[1] << 16);
        float acc = 0.0;
        [[unroll]] for (uint k = 0u; k < 4u; k++) {
            uint q = odd ? wd[k + 2u] : (wd[k + 1u] >> 16) | (wd[k + 2u] << 16);
            uint hl = (qh >> (4u * k)) & 15u, hu = (qh >> (16u + 4u * k)) & 15u;
            uint sl = (hl & 1u) | ((hl & 2u) << 7) | ((hl & 4u) << 14) | ((hl & 8u) << 21);
            uint su = (hu & 1u) | ((hu & 2u) << 7) | ((hu & 4u) << 14) | ((hu & 8u) << 21);
            acc += dot(b4((q & 0x0F0F0F0Fu) | (sl << 4)), xv[k]) +
                   dot(b4(((q >> 4) & 0x0F0F0F0Fu) | (su << 4)), xv[4u + k]);
        }
        return d * (acc - 16.0 * xs.x);
    }
    // F32
    return dot(uintBitsToFloat(ld16(rb + 16u * t)), xv[0]);
}

void main()
{
    uint tid = gl_LocalInvocationID.x, tpr = p.tpr;
    uint lane = tid % tpr, slice = tid / tpr;
    uint r0 = (gl_WorkGroupID.x * (WG / tpr) + slice) * NR;
    uint v = gl_WorkGroupID.y, z = gl_WorkGroupID.z;
    uint wbase = p.w_offset + z * p.slab_bytes;
    uint xrow = v;
    if (p.mode != 0u) {
        uint t = v / p.k, j = v % p.k;
        wbase = p.w_offset + uint(ids[p.ids_off + t * p.ids_ld + j]) * p.slab_bytes;
        xrow = p.mode == 1u ? t : v;
    }
    uint w2base = wbase - p.w_offset + p.w2_offset;
    uint xo = (p.x_off + z * p.x_zs + xrow * p.x_ld) >> 2; // in vec4s
    const bool fuse = FUSE != 0u;
    uint rowb[NR];
    [[unroll]] for (uint r = 0u; r < NR; r++)
        rowb[r] = min(r0 + r, p.nrows - 1u) * p.row_bytes;
    float acc[NR], acc2[NR];
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        acc[r] = 0.0;
        acc2[r] = 0.0;
    }
    float sq = 0.0;
    uint ntask = p.ncols / EPT;
    for (uint t0 = 0u; t0 < ntask; t0 += U * tpr)
        [[unroll]] for (uint u = 0u; u < U; u++) {
            uint t = t0 + u * tpr + lane;
            float keep = t < ntask ? 1.0 : 0.0;
            t = t < ntask ? t : 0u;
            vec4 xv[8];
            vec4 xs = vec4(0.0);
            [[unroll]] for (uint kk = 0u; kk < NX; kk++) {
                uint e = x_elem(t, kk);
                vec4 xr = x4[xo + (e >> 2)];
                if (p.norm != 0u)
                    sq += keep * dot(xr, xr);
                xv[kk] = p.norm != 0u ? xr * gain4(e) : xr;
                float s = xv[kk].x + xv[kk].y + xv[kk].z + xv[kk].w;
                if (TYPE == T_Q4_K || TYPE == T_Q5_K)
                    xs[kk >> 2] += s;
                else if (TYPE == T_Q6_K)
                    xs[kk >> 1] += s;
                else
                    xs.x += s;
            }
            [[unroll]] for (uint kk = NX; kk < 8u; kk++)
                xv[kk] = vec4(0.0);
            [[unroll]] for (uint r = 0u; r < NR; r++) {
                acc[r] += keep * task_dot(wbase + rowb[r], t, xv, xs);
                if (fuse)
                    acc2[r] += keep * task_dot(w2base + rowb[r], t, xv, xs);
            }
        }
    // sums over the slice's lanes (a slice lies inside one subgroup)
    for (uint m = 1u; m < tpr; m <<= 1) {
        sq += subgroupShuffleXor(sq, m);
        [[unroll]] for (uint r = 0u; r < NR; r++) {
            acc[r] += subgroupShuffleXor(acc[r], m);
            if (fuse)
                acc2[r] += subgroupShuffleXor(acc2[r], m);
        }
    }
    float scale = p.norm != 0u ? 1.0 / sqrt(sq / float(p.ncols) + p.eps) : 1.0;
    [[unroll]] for (uint r = 0u; r < NR; r++)
        if (lane == 0u && r0 + r < p.nrows) {
            uint yi = p.y_off + z * p.y_zs + v * p.y_ld + r0 + r;
            float a = acc[r] * scale, a2 = acc2[r] * scale;
            float res = fuse ? (a / (1.0 + exp(-a))) * a2 : a;
            y[yi] = p.accumulate != 0u ? y[yi] + res : res;
        }
}
