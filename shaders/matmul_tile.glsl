// Shared by matmul.comp and coopmat/matmul_cm.comp: the bindings, the push constants (mirror
// glm_vk_matmul_push in src/backend/vk/ops.h), 8-element dequantization of a weight row
// chunk, and the token-row bookkeeping of a tile. A tile is BM weight rows × BN token rows
// (each kernel defines both); the shared dimension advances 32 columns (one chunk) at a time.
// Loading the tiles into shared memory is each kernel's own.
//   mode 0: y[t][r] = W_slab[r] · x[t]                     (t < ntok)
//   mode 1: grouped experts, pair v = t·k + j listed under expert e = ids[t][j]:
//           y[v][r] = W_e[r] · x[v / k]
//   mode 2: as mode 1 with y[v][r] = W_e[r] · x[v]
//   mode 3: one product per slab z = gl_WorkGroupID.z (attention heads): y_z[t][r] = W_z[r] · x_z[t],
//           x_z at x_off + z·k, y_z at y_off + z·g_off (t < ntok)
// Grouped modes read counts[E], offsets[E], tiles[E+1] and the pair list at g_off of
// binding 3, written by moe_group.comp for tiles of BN rows (the host passes the kernel's BN).
layout(constant_id = 0) const uint TYPE = 0;

layout(std430, binding = 0) readonly buffer W { uint w[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(std430, binding = 3) readonly buffer G { int g[]; };

layout(push_constant) uniform P {
    uint type, ncols, nrows, row_bytes;
    uint w_offset, slab_bytes;
    uint x_off, x_ld, y_off, y_ld;
    uint ntok, mode, k, g_off, n_exp, pad;
    uint w2_offset, pad1, pad2, pad3; // matmul_cm's SWIGLU: the up weights' byte offset
} p;

#include "dequant.glsl"

// The 32-bit little-endian word at any byte offset. Both words are always read (the second
// clamped to the buffer) so that no branch separates the loads of a tile step: the loads of
// one step must all be in flight before the first is used.
uint rdw(uint off)
{
    uint i = off >> 2, sh = (off & 3u) * 8u;
    uint lo = w[i], hi = w[min(i + 1u, uint(w.length()) - 1u)];
    return sh == 0u ? lo : (lo >> sh) | (hi << (32u - sh));
}

// Byte i (< 12) of three words.
uint byte3(uvec3 s, uint i) { return ((i < 4u ? s.x : i < 8u ? s.y : s.z) >> (8u * (i % 4u))) & 0xffu; }

// The 8 bytes at byte offset off (any alignment) as two words: three aligned loads, the last
// clamped to the buffer, and no branch between them.
uvec2 rd8b(uint off)
{
    uint i = off >> 2, sh = (off & 3u) * 8u, n = uint(w.length()) - 1u;
    uvec3 a = uvec3(w[i], w[min(i + 1u, n)], w[min(i + 2u, n)]);
    return sh == 0u ? a.xy : uvec2((a.x >> sh) | (a.y << (32u - sh)), (a.y >> sh) | (a.z << (32u - sh)));
}

// Q4_K / Q5_K: the scale d and min m of sub-block sub (< 8) from the block's first 16 bytes
// (d, dmin, 12 bytes of 6-bit scales and mins as scale_min_k4); both forms computed and selected.
void k4_dm(uvec4 hd, uint sub, out float d, out float m)
{
    vec2 dm = unpackHalf2x16(hd.x);
    uvec3 sc3 = hd.yzw;
    uint lo4 = sub % 4u, b0 = byte3(sc3, lo4), b4 = byte3(sc3, lo4 + 4u), b8 = byte3(sc3, lo4 + 8u);
    bool first = sub < 4u;
    d = dm.x * float(first ? b0 & 63u : (b8 & 15u) | ((b0 >> 6) << 4));
    m = dm.y * float(first ? b4 & 63u : (b8 >> 4) | ((b4 >> 6) << 4));
}

// Q6_K: 8 weights from 8 bytes of ql (nibble at shift sh) and 8 of qh (bit pair kk), scale d.
void q6_dec8(uvec2 lo, uvec2 hi, uint sh, uint kk, float d, out float v[8])
{
    [[unroll]] for (uint j = 0u; j < 8u; j++) {
        uint sj = 8u * (j % 4u);
        uint qv = ((lo[j / 4u] >> (sj + sh)) & 15u) | (((hi[j / 4u] >> (sj + 2u * kk)) & 3u) << 4);
        v[j] = d * (float(qv) - 32.0);
    }
}

// Elements 8q .. 8q+7 of 32-element chunk c of the weight row starting at byte `row`.
// Specialized for the types of GLM-4.7-Flash's quantizations (whole words, 8 codes from two);
// others go element-wise through dequant().
void deq8(uint row, uint c, uint q, out float v[8])
{
    uint j0 = 8u * q;
    if (TYPE == T_Q8_0) {
        uint b = row + c * 34u;
        float d = rdf16(b);
        uvec2 qs = rd8b(b + 2u + j0);
        [[unroll]] for (uint j = 0u; j < 8u; j++)
            v[j] = d * float(sx8((qs[j / 4u] >> (8u * (j % 4u))) & 0xffu));
    } else if (TYPE == T_Q5_0) {
        uint b = row + c * 22u;
        float d = rdf16(b);
        uint qh = rdw(b + 2u) >> j0, sh = q >= 2u ? 4u : 0u;
        uvec2 qs = rd8b(b + 6u + 8u * (q % 2u));
        [[unroll]] for (uint j = 0u; j < 8u; j++) {
            uint qv = ((qs[j / 4u] >> (8u * (j % 4u) + sh)) & 15u) | (((qh >> j) & 1u) << 4);
            v[j] = d * (float(qv) - 16.0);
        }
    } else if (TYPE == T_Q4_K || TYPE == T_Q5_K) {
        // blocks of 144 / 176 bytes: every field is word-aligned
        uint b = row + (c / 8u) * (TYPE == T_Q4_K ? 144u : 176u), sub = c % 8u, pp = sub / 2u, sh = 4u * (sub % 2u);
        uint bw = b >> 2;
        float d, m;
        k4_dm(uvec4(w[bw], w[bw + 1u], w[bw + 2u], w[bw + 3u]), sub, d, m);
        uint qw = (b + (TYPE == T_Q4_K ? 16u : 48u) + 32u * pp + j0) >> 2;
        uvec2 qs = uvec2(w[qw], w[qw + 1u]);
        uvec2 hb = uvec2(0u);
        if (TYPE == T_Q5_K)
            hb = uvec2(w[(b + 16u + j0) >> 2], w[((b + 16u + j0) >> 2) + 1u]);
        [[unroll]] for (uint j = 0u; j < 8u; j++) {
            uint n = (qs[j / 4u] >> (8u * (j % 4u) + sh)) & 15u;
            if (TYPE == T_Q5_K)
                n += 16u * ((hb[j / 4u] >> (8u * (j % 4u) + sub)) & 1u);
            v[j] = d * float(n) - m;
        }
    } else if (TYPE == T_Q6_K) {
        uint b = row + (c / 8u) * 210u, sub = c % 8u, h = sub / 4u, kk = sub % 4u;
        uint L = b + 64u * h + (kk % 2u) * 32u + j0, H = b + 128u + 32u * h + j0;
        float d = rdf16(b + 208u) * float(sx8(rd8(b + 192u + 2u * sub + q / 2u)));
        q6_dec8(rd8b(L), rd8b(H), 4u * (kk / 2u), kk, d, v);
    } else {
        uint E = blk_elems(TYPE), B = blk_bytes(TYPE);
        [[unroll]] for (uint j = 0u; j < 8u; j++) {
            uint i = c * 32u + j0 + j;
            v[j] = dequant(TYPE, row + (i / E) * B, i % E);
        }
    }
}

// The tile of workgroup (gl_WorkGroupID.x, .y): its first token row n0 within its product,
// the product's token count and, for grouped modes, where its expert's pairs start. Set by
// tile_rows(); slot_rows() maps a slot to its x and y rows.
uint x_base, y_base; // x_off and y_off of this workgroup's product
uint tile_n0, tile_count, tile_first;

// tiles[i] of the grouping (a kernel may define TILES_AT to read a copy in shared memory)
#ifndef TILES_AT
#define TILES_AT(i) g[p.g_off + 2u * p.n_exp + (i)]
#endif

// Sets up the tile: returns false when it is empty (every invocation returns the same value,
// so the caller may exit before any barrier). Grouped modes: .y numbers the tiles of all
// experts in turn (tiles[e] .. tiles[e+1]-1 are expert e's, for tiles of BN rows); the grid
// has more than enough, and the surplus exits here. wbase receives the byte offset of the
// weight slab.
bool tile_rows(out uint wbase)
{
    uint ty = gl_WorkGroupID.y, n0 = ty * BN;
    wbase = p.w_offset;
    x_base = p.x_off;
    y_base = p.y_off;
    uint count = p.ntok, first = 0u;
    if (p.mode == 3u) {
        wbase += gl_WorkGroupID.z * p.slab_bytes;
        x_base += gl_WorkGroupID.z * p.k;
        y_base += gl_WorkGroupID.z * p.g_off;
    } else if (p.mode != 0u) {
        if (ty >= uint(TILES_AT(p.n_exp))) // tiles[0 .. E]
            return false;
        uint lo = 0u, hi = p.n_exp - 1u; // the last e with tiles[e] <= ty (empty experts share it)
        while (lo < hi) {
            uint mid = (lo + hi + 1u) / 2u;
            if (uint(TILES_AT(mid)) <= ty)
                lo = mid;
            else
                hi = mid - 1u;
        }
        n0 = (ty - uint(TILES_AT(lo))) * BN;
        count = uint(g[p.g_off + lo]);
        first = uint(g[p.g_off + p.n_exp + lo]);
        wbase += lo * p.slab_bytes;
    }
    tile_n0 = n0;
    tile_count = count;
    tile_first = first;
    return n0 < count;
}

// Slot s (< BN) of the tile reads x row xr and writes y row yr; both -1 for an empty slot.
void slot_rows(uint s, out int xr, out int yr)
{
    xr = yr = -1;
    if (tile_n0 + s < tile_count) {
        if (p.mode == 0u || p.mode == 3u) {
            xr = yr = int(tile_n0 + s);
        } else {
            int v = g[p.g_off + 3u * p.n_exp + 1u + tile_first + tile_n0 + s];
            yr = v;
            xr = p.mode == 1u ? v / int(p.k) : v;
        }
    }
}

// Chunk c of weight row m, elements 8q..8q+7; `valid` false gives zeros (the row read is then
// a clamped one, so the loads need no branch).
void load_w8(uint wbase, uint m, uint c, uint q, bool valid, out float v[8])
{
    deq8(wbase + min(m, p.nrows - 1u) * p.row_bytes, c, q, v);
    [[unroll]] for (uint j = 0u; j < 8u; j++)
        v[j] = valid ? v[j] : 0.0;
}

