#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : require
// Matrix-vector products over any weight type, dequantizing in registers (mirrors
// ref/matmul.c). A workgroup of 256 invocations is cut into slices of p.tpr invocations (a
// power of two, chosen by the host from the row length); each slice computes NR consecutive
// output rows of one vector. The row is cut into 32-element chunks (a whole block of the
// 32-element types, one sub-block of the 256-element K types); an invocation takes chunks in
// turn, loads that chunk of x into registers once and uses it for all NR rows. The hot types
// (Q4_K, Q5_K, Q6_K, Q8_0, Q5_0) read their blocks as 32-bit words (16-byte loads where the
// block data is 16-byte aligned); the others decode byte by byte. Partial sums are reduced
// with subgroup shuffles inside a slice, through shared memory across subgroups (float32
// throughout). The weight type is a specialization constant: one pipeline per type.
//   mode 0: y[z][v][r] = W_{slab z}[r] · x[z][v]           (slab z = gl_WorkGroupID.z, heads)
//   mode 1: y[v][r] = W_{ids[v/k][v%k]}[r] · x[v/k]         (routed experts, x per token)
//   mode 2: y[v][r] = W_{ids[v/k][v%k]}[r] · x[v]           (routed experts, x per pair)
// With FUSE (and p.swiglu) a second weight at byte offset p.w2_offset of the same buffer
// (same shape) is applied too and y = SiLU(W·x) * (W2·x), as eltwise op 1 computes it.
// With p.norm, x is first replaced by RMSNorm(x; g, eps) (rms_norm.comp's arithmetic): every
// workgroup stages g ⊙ x, sums the squares of x as it stages it and scales its dot products by
// 1/sqrt(mean + eps) at the end (the factor is common to every term), so the norm
// costs no dispatch of its own; g is a row of p.ncols F32/F16/BF16 elements at byte p.g_offset.
// With p.accumulate the product is added to what y holds (y += W·x: a residual add folded in).
// Rows past nrows read the last row again (results dropped), so that every row's loads are
// unconditional and can be in flight together.
// Push constants mirror glm_vk_matvec_push in src/backend/vk/ops.h.
#define WG 256u
layout(local_size_x = 256) in;
layout(constant_id = 0) const uint TYPE = 0;
layout(constant_id = 1) const uint FUSE = 0;
#define NR 2u

layout(std430, binding = 0) readonly buffer W { uint w[]; };
layout(std430, binding = 0) readonly buffer W4 { uvec4 w4[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
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

shared float red[2u * NR][256];
shared float nsum[32];
// x of the 2·tpr chunks of one step, chunk-major with a pad word so that invocations reading
// consecutive chunks hit distinct banks (filled with coalesced loads by the whole workgroup)
shared float xs[128 * 33];

// Are the rows and slabs of both weights 16-byte aligned?
bool aligned16() { return ((p.w_offset | p.w2_offset | p.row_bytes | p.slab_bytes) & 15u) == 0u; }

// 16 bytes at an offset that is 16-aligned when aligned16() (one vector load then).
uvec4 ld16(uint off)
{
    if (aligned16())
        return w4[off >> 4];
    uint i = off >> 2;
    return uvec4(w[i], w[i + 1u], w[i + 2u], w[i + 3u]);
}

// The 32-bit little-endian word at an even byte offset.
uint rdw(uint off)
{
    uint i = off >> 2;
    return (off & 2u) == 0u ? w[i] : (w[i] >> 16) | (w[i + 1u] << 16);
}

// Σ_j byte_j(q) · xr[x0 + j] over the 4 bytes of q.
float dot4(uint q, float xa, float xb, float xc, float xd)
{
    return float(q & 255u) * xa + float((q >> 8) & 255u) * xb + float((q >> 16) & 255u) * xc + float(q >> 24) * xd;
}

// Σ_j W[chunk c of the row at byte `row`][j] · xr[j]; sx0, sx1 = Σ xr over the two halves.
float chunk_dot(uint row, uint c, float xr[32], float sx0, float sx1)
{
    float acc = 0.0;
    float sx = sx0 + sx1;
    if (TYPE == T_Q4_K || TYPE == T_Q5_K) {
        bool q5 = TYPE == T_Q5_K;
        uint b = row + (c >> 3) * (q5 ? 176u : 144u), sub = c & 7u, pp = sub >> 1, t4 = (sub & 1u) * 4u;
        vec2 dm = unpackHalf2x16(w[b >> 2]);
        uint s0 = w[(b >> 2) + 1u], s1 = w[(b >> 2) + 2u], s2 = w[(b >> 2) + 3u];
        uint sh = 8u * (sub & 3u);
        float sc, mn;
        if (sub < 4u) {
            sc = float((s0 >> sh) & 63u);
            mn = float((s1 >> sh) & 63u);
        } else {
            sc = float(((s2 >> sh) & 15u) | (((s0 >> (sh + 6u)) & 3u) << 4));
            mn = float(((s2 >> (sh + 4u)) & 15u) | (((s1 >> (sh + 6u)) & 3u) << 4));
        }
        uint qo = b + (q5 ? 48u : 16u) + 32u * pp;
        uvec4 qa = ld16(qo), qb = ld16(qo + 16u);
        uvec4 ha = uvec4(0u), hb = uvec4(0u);
        if (q5) {
            ha = ld16(b + 16u);
            hb = ld16(b + 32u);
        }
        uint qw[8] = uint[8](qa.x, qa.y, qa.z, qa.w, qb.x, qb.y, qb.z, qb.w);
        uint hw[8] = uint[8](ha.x, ha.y, ha.z, ha.w, hb.x, hb.y, hb.z, hb.w);
        [[unroll]] for (uint i = 0u; i < 8u; i++) {
            uint q = (qw[i] >> t4) & 0x0F0F0F0Fu;
            if (q5)
                q |= ((hw[i] >> sub) & 0x01010101u) << 4;
            acc += dot4(q, xr[4u * i], xr[4u * i + 1u], xr[4u * i + 2u], xr[4u * i + 3u]);
        }
        acc = dm.x * sc * acc - dm.y * mn * sx;
    } else if (TYPE == T_Q6_K) {
        uint b = row + (c >> 3) * 210u, sub = c & 7u, h = sub >> 2, kk = sub & 3u;
        uint L = b + 64u * h + 32u * (kk & 1u), H = b + 128u + 32u * h;
        uint ls = 4u * (kk >> 1), hs = 2u * kk;
        float a0 = 0.0, a1 = 0.0;
        [[unroll]] for (uint i = 0u; i < 8u; i++) {
            uint q = ((rdw(L + 4u * i) >> ls) & 0x0F0F0F0Fu) | (((rdw(H + 4u * i) >> hs) & 0x03030303u) << 4);
            float d = dot4(q, xr[4u * i], xr[4u * i + 1u], xr[4u * i + 2u], xr[4u * i + 3u]);
            if (i < 4u)
                a0 += d;
            else
                a1 += d;
        }
        float s0 = float(sx8(rd8(b + 192u + 2u * sub))), s1 = float(sx8(rd8(b + 193u + 2u * sub)));
        acc = rdf16(b + 208u) * (s0 * (a0 - 32.0 * sx0) + s1 * (a1 - 32.0 * sx1));
    } else if (TYPE == T_Q8_0) {
        uint b = row + c * 34u;
        [[unroll]] for (uint i = 0u; i < 8u; i++) {
            uint q = rdw(b + 2u + 4u * i);
            acc += float(int(q << 24) >> 24) * xr[4u * i] + float(int(q << 16) >> 24) * xr[4u * i + 1u] +
                   float(int(q << 8) >> 24) * xr[4u * i + 2u] + float(int(q) >> 24) * xr[4u * i + 3u];
        }
        acc *= rdf16(b);
    } else if (TYPE == T_Q5_0) {
        uint b = row + c * 22u;
        uint qh = rdw(b + 2u);
        [[unroll]] for (uint i = 0u; i < 4u; i++) {
            uint q = rdw(b + 6u + 4u * i);
            uint hl = (qh >> (4u * i)) & 15u, hh = (qh >> (16u + 4u * i)) & 15u;
            uint sl = (hl & 1u) | ((hl & 2u) << 7) | ((hl & 4u) << 14) | ((hl & 8u) << 21);
            uint sh = (hh & 1u) | ((hh & 2u) << 7) | ((hh & 4u) << 14) | ((hh & 8u) << 21);
            acc += dot4((q & 0x0F0F0F0Fu) | (sl << 4), xr[4u * i], xr[4u * i + 1u], xr[4u * i + 2u], xr[4u * i + 3u]);
            acc += dot4(((q >> 4) & 0x0F0F0F0Fu) | (sh << 4), xr[16u + 4u * i], xr[17u + 4u * i], xr[18u + 4u * i],
                        xr[19u + 4u * i]);
        }
        acc = rdf16(b) * (acc - 16.0 * sx);
    } else if (TYPE == T_F32) {
        if (aligned16()) {
            [[unroll]] for (uint i = 0u; i < 8u; i++) {
                vec4 wv = uintBitsToFloat(w4[(row >> 4) + c * 8u + i]);
                acc += wv.x * xr[4u * i] + wv.y * xr[4u * i + 1u] + wv.z * xr[4u * i + 2u] + wv.w * xr[4u * i + 3u];
            }
        } else {
            [[unroll]] for (uint j = 0u; j < 32u; j++)
                acc += uintBitsToFloat(w[(row >> 2) + c * 32u + j]) * xr[j];
        }
    } else if (TYPE == T_F16) {
        [[unroll]] for (uint j = 0u; j < 32u; j++)
            acc += rdf16(row + (c * 32u + j) * 2u) * xr[j];
    } else if (TYPE == T_BF16) {
        [[unroll]] for (uint j = 0u; j < 32u; j++)
            acc += uintBitsToFloat(rd16(row + (c * 32u + j) * 2u) << 16) * xr[j];
    } else if (TYPE == T_Q4_0 || TYPE == T_IQ4_NL) {
        uint b = row + c * 18u;
        [[unroll]] for (uint j = 0u; j < 16u; j++) {
            uint q = rd8(b + 2u + j);
            if (TYPE == T_Q4_0)
                acc += (float(q & 15u) - 8.0) * xr[j] + (float(q >> 4) - 8.0) * xr[16u + j];
            else
                acc += k_iq4nl[q & 15u] * xr[j] + k_iq4nl[q >> 4] * xr[16u + j];
        }
        acc *= rdf16(b);
    } else if (TYPE == T_Q4_1) {
        uint b = row + c * 20u;
        [[unroll]] for (uint j = 0u; j < 16u; j++) {
            uint q = rd8(b + 4u + j);
            acc += float(q & 15u) * xr[j] + float(q >> 4) * xr[16u + j];
        }
        acc = acc * rdf16(b) + sx * rdf16(b + 2u);
    } else if (TYPE == T_Q5_1) {
        uint b = row + c * 24u;
        uint h = rd32(b + 4u);
        [[unroll]] for (uint j = 0u; j < 16u; j++) {
            uint q = rd8(b + 8u + j);
            float lo = float((q & 15u) | (((h >> j) & 1u) << 4));
            float hi = float((q >> 4) | (((h >> (j + 16u)) & 1u) << 4));
            acc += lo * xr[j] + hi * xr[16u + j];
        }
        acc = acc * rdf16(b) + sx * rdf16(b + 2u);
    } else if (TYPE == T_MXFP4) {
        uint b = row + c * 17u;
        [[unroll]] for (uint j = 0u; j < 16u; j++) {
            uint q = rd8(b + 1u + j);
            acc += k_mxfp4[q & 15u] * xr[j] + k_mxfp4[q >> 4] * xr[16u + j];
        }
        uint e = rd8(b);
        acc *= e < 2u ? uintBitsToFloat(0x00200000u << e) : uintBitsToFloat((e - 1u) << 23);
    } else if (TYPE == T_Q2_K) {
        uint b = row + (c / 8u) * 84u, sub = c % 8u, h = sub / 4u, kk = sub % 4u;
        float d = rdf16(b + 80u), dmin = rdf16(b + 82u);
        [[unroll]] for (uint half_ = 0u; half_ < 2u; half_++) {
            uint sc = rd8(b + 2u * sub + half_);
            float a = 0.0;
            [[unroll]] for (uint l = 0u; l < 16u; l++)
                a += float((rd8(b + 16u + 32u * h + 16u * half_ + l) >> (2u * kk)) & 3u) * xr[16u * half_ + l];
            acc += d * float(sc & 15u) * a - dmin * float(sc >> 4) * (half_ == 0u ? sx0 : sx1);
        }
    } else if (TYPE == T_Q3_K) {
        uint b = row + (c / 8u) * 110u, sub = c % 8u, h = sub / 4u, kk = sub % 4u;
        float d = rdf16(b + 108u);
        [[unroll]] for (uint half_ = 0u; half_ < 2u; half_++) {
            uint s = 2u * sub + half_;
            uint lo = s < 8u ? rd8(b + 96u + s) & 15u : rd8(b + 96u + s - 8u) >> 4;
            uint hi = (rd8(b + 96u + 8u + s % 4u) >> (2u * (s / 4u))) & 3u;
            float a = 0.0;
            [[unroll]] for (uint m = 0u; m < 16u; m++) {
                uint l = 16u * half_ + m;
                int q2 = int((rd8(b + 32u + 32u * h + l) >> (2u * kk)) & 3u);
                int q = q2 - (((rd8(b + l) >> (4u * h + kk)) & 1u) != 0u ? 0 : 4);
                a += float(q) * xr[l];
            }
            acc += d * float(int(lo | (hi << 4)) - 32) * a;
        }
    } else if (TYPE == T_IQ4_XS) {
        uint b = row + (c / 8u) * 136u, sb = c % 8u;
        uint ls = ((rd8(b + 4u + sb / 2u) >> (4u * (sb % 2u))) & 15u) | (((rd16(b + 2u) >> (2u * sb)) & 3u) << 4);
        [[unroll]] for (uint j = 0u; j < 16u; j++) {
            uint q = rd8(b + 8u + 16u * sb + j);
            acc += k_iq4nl[q & 15u] * xr[j] + k_iq4nl[q >> 4] * xr[16u + j];
        }
        acc *= rdf16(b) * (float(ls) - 32.0);
    }
    return acc;
}

// Element i of the norm gain (F32, F16 or BF16; p.g_offset is 4-byte aligned).
float gain(uint i)
{
    if (p.g_type == T_F32)
        return uintBitsToFloat(g[(p.g_offset >> 2) + i]);
    uint wd = g[(p.g_offset >> 2) + (i >> 1)], h = (i & 1u) != 0u ? wd >> 16 : wd & 0xFFFFu;
    return p.g_type == T_BF16 ? uintBitsToFloat(h << 16) : unpackHalf2x16(h).x;
}

// 1 / sqrt(Σ/n + eps) from each invocation's partial sum of squares, the same value in every
// invocation (summed per subgroup, then over the subgroups in order).
float norm_scale(float sq)
{
    sq = subgroupAdd(sq);
    if (gl_SubgroupInvocationID == 0u)
        nsum[gl_SubgroupID] = sq;
    barrier();
    float tot = 0.0;
    for (uint s = 0u; s < gl_NumSubgroups; s++)
        tot += nsum[s];
    return 1.0 / sqrt(tot / float(p.ncols) + p.eps);
}

// x[xo + i] as the product sees it: times the norm gain when p.norm (the scale comes last).
float xin(uint xo, uint i)
{
    return p.norm != 0u ? gain(i) * x[xo + i] : x[xo + i];
}

void main()
{
    uint tid = gl_LocalInvocationID.x;
    uint lane = tid % p.tpr, slice = tid / p.tpr;
    uint r0 = (gl_WorkGroupID.x * (WG / p.tpr) + slice) * NR;
    uint v = gl_WorkGroupID.y, z = gl_WorkGroupID.z;
    uint wbase = p.w_offset + z * p.slab_bytes;
    uint xrow = v;
    if (p.mode != 0u) {
        uint t = v / p.k, j = v % p.k;
        wbase = p.w_offset + uint(ids[p.ids_off + t * p.ids_ld + j]) * p.slab_bytes;
        xrow = p.mode == 1u ? t : v;
    }
    uint w2base = wbase - p.w_offset + p.w2_offset;
    uint xo = p.x_off + z * p.x_zs + xrow * p.x_ld;
    const bool fuse = FUSE != 0u;
    float sq = 0.0; // this invocation's share of Σ x² (p.norm)
    uint rowb[NR];
    [[unroll]] for (uint r = 0u; r < NR; r++)
        rowb[r] = min(r0 + r, p.nrows - 1u) * p.row_bytes;
    float acc[NR], acc2[NR];
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        acc[r] = 0.0;
        acc2[r] = 0.0;
    }
    uint nchunks = p.ncols / 32u;
    // steps of 2·tpr chunks (the same for every invocation, so the barriers are uniform):
    // x of the step into shared memory, then each invocation takes chunks lane and
    // lane + tpr, both always loaded (a chunk past the end repeats the step's first,
    // result dropped) so that their loads are in flight together
    uint step = 2u * p.tpr;
    for (uint base = 0u; base < nchunks; base += step) {
        uint nx = min(step, nchunks - base) * 32u;
        barrier();
        for (uint i = tid; i < nx; i += WG)
        {
            float xv = x[xo + base * 32u + i];
            sq += xv * xv;
            xs[(i >> 5) * 33u + (i & 31u)] = p.norm != 0u ? gain(base * 32u + i) * xv : xv;
        }
        barrier();
        [[unroll]] for (uint u = 0u; u < 2u; u++) {
            uint k = lane + u * p.tpr;
            float keep = base + k < nchunks ? 1.0 : 0.0;
            k = base + k < nchunks ? k : 0u;
            uint c = base + k;
            float xr[32];
            float sx0 = 0.0, sx1 = 0.0;
            [[unroll]] for (uint j = 0u; j < 16u; j++) {
                xr[j] = xs[k * 33u + j];
                xr[16u + j] = xs[k * 33u + 16u + j];
                sx0 += xr[j];
                sx1 += xr[16u + j];
            }
            [[unroll]] for (uint r = 0u; r < NR; r++) {
                acc[r] += keep * chunk_dot(wbase + rowb[r], c, xr, sx0, sx1);
                if (fuse)
                    acc2[r] += keep * chunk_dot(w2base + rowb[r], c, xr, sx0, sx1);
            }
        }
    }
    // plain types: a tail shorter than a chunk
    for (uint i = nchunks * 32u + lane; i < p.ncols; i += p.tpr)
        [[unroll]] for (uint r = 0u; r < NR; r++) {
            acc[r] += dequant(TYPE, wbase + rowb[r] + i * blk_bytes(TYPE), 0u) * xin(xo, i);
            if (fuse)
                acc2[r] += dequant(TYPE, w2base + rowb[r] + i * blk_bytes(TYPE), 0u) * xin(xo, i);
        }
    if (p.norm != 0u) {
        for (uint i = nchunks * 32u + tid; i < p.ncols; i += WG)
            sq += x[xo + i] * x[xo + i];
        float scale = norm_scale(sq);
        [[unroll]] for (uint r = 0u; r < NR; r++) {
            acc[r] *= scale;
            acc2[r] *= scale;
        }
    }
    // sums over the slice's p.tpr invocations: shuffles inside a subgroup, then (slices wider
    // than a subgroup) the subgroups' totals through shared memory, summed in order
    uint sgs = gl_SubgroupSize;
    for (uint m = 1u; m < min(p.tpr, sgs); m <<= 1)
        [[unroll]] for (uint r = 0u; r < NR; r++) {
            acc[r] += subgroupShuffleXor(acc[r], m);
            if (fuse)
                acc2[r] += subgroupShuffleXor(acc2[r], m);
        }
    if (p.tpr > sgs) {
        if (gl_SubgroupInvocationID == 0u)
            [[unroll]] for (uint r = 0u; r < NR; r++) {
                red[r][tid / sgs] = acc[r];
                red[NR + r][tid / sgs] = acc2[r];
            }
        barrier();
        if (lane == 0u)
            [[unroll]] for (uint r = 0u; r < NR; r++) {
                acc[r] = 0.0;
                acc2[r] = 0.0;
                for (uint s = 0u; s < p.tpr / sgs; s++) {
                    acc[r] += red[r][tid / sgs + s];
                    acc2[r] += red[NR + r][tid / sgs + s];
                }
            }
    }
    [[unroll]] for (uint r = 0u; r < NR; r++)
        if (lane == 0u && r0 + r < p.nrows) {
            uint yi = p.y_off + z * p.y_zs + v * p.y_ld + r0 + r;
            float res = fuse ? (acc[r] / (1.0 + exp(-acc[r]))) * acc2[r] : acc[r];
            y[yi] = p.accumulate != 0u ? y[yi] + res : res;
        }
}
