// Matrix-vector products of the decode hot types (Q4_K, Q5_K, Q6_K, Q8_0, Q5_0 and F32 with a
// multiple of 4 columns), the same products as matvec.comp (same push constants, bindings and
// modes) laid out for memory bandwidth; every other type and shape stays on matvec.comp.
// A row is cut into tasks of 32 elements (4 for F32): a Q4_K/Q5_K task reads 16 consecutive
// quant bytes of its block (the two nibbles of a byte belong to two sub-blocks), a Q6_K task
// 8 bytes of each of its three 32-byte runs (low bits of two groups, their high bits), so the
// lanes of a block read it end to end; for Q8_0 and Q5_0 a task is a block. A slice of
// p.tpr lanes (a power of two, at most the subgroup size, chosen by the host from the task
// count) computes NR consecutive rows of one vector; lane l takes tasks l, l + tpr, ... in
// groups of U: first the raw weight words of the group for all NR rows (and the SwiGLU
// partner), then x (and the norm gain), then the math, with no branch among the loads, so
// that they are all in flight together. x is read as vec4: with STAGE (products of few
// workgroups, rows of at most XCOLS elements) the workgroup first copies its row of x into shared memory (after the first
// group's weight loads are out; with NORM times the gain, the sum of squares taken there once),
// laid out so that the lanes' reads hit distinct banks, and the lanes read it from there; else
// straight from global memory (it stays in the caches), with no barrier. Sums of a slice go
// through shuffles.
// The weight type is a specialization constant (one pipeline per type), as are FUSE, NR, NORM
// and STAGE. The codes of Q6_K, Q8_0 and Q5_0 become floats through the mantissa of 2^23 (an
// OR and a subtraction) rather than conversion instructions; Q4_K and Q5_K keep conversions,
// which measured faster for them on the H100 (bench/RESULTS.md).
//   mode 0: y[z][v][r] = W_{slab z}[r] · x[z][v]; modes 1/2: routed experts (matvec.comp)
// With NORM (p.norm set), x is replaced by RMSNorm(x; g, eps): a slice reads the whole row of
// x once per row group, so it sums the squares itself and scales its sums by 1/sqrt(mean + eps).
// With ROPE (one row a slice, tpr at most half the subgroup), y's heads of p.head_dim get
// their channels [rope_off, + rope_dim) rotated at the x row's position (the query's rope,
// rope.comp's arithmetic and table) before they are written. With p.accumulate, y += W·x. The host routes here only when x's offsets are multiples of
// 4 floats, the weights (Q4_K, Q5_K, F32) and the gain are 16-byte aligned and the others'
// offsets even. Rows past nrows read the last row again (results dropped).
// Push constants mirror glm_vk_matvec_push in src/backend/vk/ops.h.
#define WG 128u
layout(local_size_x = 128) in;
layout(constant_id = 0) const uint TYPE = 0;
layout(constant_id = 1) const uint VAR = 0;
// Measurement switches (bench's matvec probe only; variant bits 5-7), bits of EXP: 1 = no math (the weight words
// and x are loaded and folded together cheaply), 2 = one x load a task (its other 7 vec4s made
// from it), 4 = the rows streamed by the grid with nothing computed (stream_rows), 8 = two tasks
// a lane in flight instead of one
const uint EXP = VAR >> 5;
const bool X_NOMATH = (EXP & 1u) != 0u, X_ONEX = (EXP & 2u) != 0u, X_STREAM = (EXP & 4u) != 0u;
const bool X_U2 = (EXP & 8u) != 0u; // two tasks a lane in flight (not 1)
const uint FUSE = VAR & 1u;                  // SwiGLU pair
const uint NR = (VAR & 2u) != 0u ? 1u : 2u; // rows per slice (1 for products of few workgroups)
const bool NORM = (VAR & 4u) != 0u;          // RMSNorm of x in front (gain and sum of squares)
const bool STAGE = (VAR & 8u) != 0u;         // x through shared memory (p.ncols <= XCOLS)
const bool ROPE = (VAR & 16u) != 0u;         // each head's rope channels of y rotated (one row a slice)
// KS2 (products of few workgroups and rows of several rounds): each row's tasks are split
// between two slices in the two halves of the workgroup (slice s and s + WG / tpr / 2, in
// different subgroups), which take alternate rounds; the second half hands its sums to the
// first through shared memory. Twice the workgroups, half the rounds a lane waits through.
const bool KS2 = (VAR & 1024u) != 0u;
#define NRMAX 2u
// COMB (routed mode 2 only, one row a slice, none of FUSE, NORM, STAGE, ROPE, Q8OUT; Q8X too): the MoE
// mixture in the product, y[t][r] += Σ_j wts[t][j] · (W_{ids[t][j]}[r] · x[t·k + j]), y's rows
// being the tokens (gl_WorkGroupID.y) and wts at float p.g_offset + t · p.g_type of binding 4.
// A slice walks the k experts' tasks of its row as one list of k · ntask tasks (task T: expert
// T / ntask), each lane weighting its task sums by its expert's weight, so that every output is
// written by one lane (no atomics, no second dispatch for the mixture).
#define KMAX 16u

layout(std430, binding = 0) readonly buffer W { uint w[]; };
layout(std430, binding = 0) readonly buffer W4 { uvec4 w4[]; };
layout(std430, binding = 1) readonly buffer X { vec4 x4[]; };
layout(std430, binding = 2) buffer Y { float y[]; };
layout(std430, binding = 3) readonly buffer I { int ids[]; };
layout(std430, binding = 4) readonly buffer G { uvec4 g4[]; };
layout(std430, binding = 5) readonly buffer PS { int pos[]; };   // ROPE: each x row's position
layout(std430, binding = 6) readonly buffer CS { float cs[]; };  // ROPE: rope.comp's (cos, sin) table
#ifdef MATVEC_Q8
// Q8X (matvec_q8.comp): x is a row of quant_x8.comp's 8-bit form (x8.glsl; binding 1 read as
// words, and its scales as vec4s of x4): words of 4 int8 codes, then each word's scale. Q4_K and
// Q5_K in the XC layout and Q6_K only; no NORM, STAGE or ROPE (the host keeps those on
// matvec_fast.comp).
const bool Q8X = true;
layout(std430, binding = 1) readonly buffer XQ { uvec4 xq4[]; };
#else
const bool Q8X = false;
#endif
const bool COMB = (VAR & 4096u) != 0u;
layout(std430, binding = 4) readonly buffer GW { float gw[]; }; // COMB: the mixture weights
shared uint comb_wb[COMB ? KMAX : 1u]; // COMB: expert j's slab (bytes), its x row (vec4s), weight
shared uint comb_xo[COMB ? KMAX : 1u];
shared float comb_w[COMB ? KMAX : 1u];

layout(push_constant) uniform P {
    uint type, ncols, nrows, row_bytes;
    uint w_offset, slab_bytes, x_off, x_ld;
    uint y_off, y_ld, ids_off, ids_ld;
    uint k, mode, x_zs, y_zs;
    uint tpr, w2_offset, swiglu, norm;
    uint g_offset, g_type;
    float eps;
    uint accumulate;
    uint pos_off, pos_ld, head_dim, rope_off;
    uint rope_dim, table_positions, y8_off, y8_ld;
} p;

#include "dequant.glsl"

// Q4_K/Q5_K with XC: the 8 tasks of a block are its 8 columns of 4 bytes in each 32-byte run
// of codes (task c: bytes [4c, 4c + 4) of runs 0..3), so that the lanes of a block read x in
// whole 128-byte lines (a quarter subgroup's vec4s consecutive) where the runs of 16 bytes
// (without XC) spread one vec4 load over 16 lines of a subgroup; a task then holds elements of
// all 8 sub-blocks.
const bool XC = (((Q8X ? 1u : VAR >> 9)) & (uint(TYPE == T_Q4_K) | uint(TYPE == T_Q5_K))) != 0u; // (no &&: it branches)

const uint EPT = TYPE == T_F32 ? 4u : 32u; // elements per task
// Tasks per lane whose loads go out together. The host sizes the slices for two tasks a lane
// (ops.c), which a lane then takes in two rounds of one: on the H100 that measured faster
// than one round of two (fewer registers, twice the resident workgroups; bench/RESULTS.md).
const uint U = TYPE == T_F32 ? 8u : (X_U2 ? 2u : 1u);
const uint NX = TYPE == T_F32 ? 1u : 8u;   // vec4s of x per task
#define UMAX 8u
#define NWR 13u // raw weight words per task (Q6_K's; the other types use fewer)
// Staged x: vec4 i at i + (i >> XPAD) (one pad vec4 every 2^XPAD), so that the 8 lanes of a
// quarter subgroup, which read one vec4 each of their tasks' x at a time, hit distinct banks.
const uint XPAD = TYPE == T_Q4_K || TYPE == T_Q5_K ? 4u : (TYPE == T_Q6_K ? 5u : 3u);
#define XCOLS 5120u // longest staged row (GLM_VK_MATVEC_FAST_XCOLS)
#define XV (XCOLS / 4u + XCOLS / 32u)
#define XSTEP 5u    // staging loads in flight per lane
shared vec4 xsh[STAGE ? XV : 1u];
shared float sqsh[WG];
shared float kssh[KS2 ? 5u * (WG / 2u) : 1u]; // KS2: a second-half slice's sums (acc, acc2, sq)
// Q8OUT: y also in the 8-bit form of quant_x8.comp (for a matvec_q8.comp product that reads it):
// the row of y row v (its heads back to back, gl_NumWorkGroups.z · nrows columns) at word
// y8_off + v · y8_ld of binding 7. A workgroup's rows are whole words of 4 (the host ensures
// it), so it quantizes its own through shared memory.
const bool Q8OUT = (VAR & 2048u) != 0u;
layout(std430, binding = 7) writeonly buffer X8W { uint x8w[]; };
layout(std430, binding = 7) writeonly buffer X8F { float x8f[]; };
#include "x8.glsl"
shared float q8_rows[Q8OUT ? 2u * WG : 1u]; // the workgroup's results (at most 2 rows a lane)

// The workgroup's R rows from r0w of head z in y row v (its results in q8_rows) as words.
void q8_out(uint tid, uint r0w, uint R, uint v, uint z)
{
    barrier();
    uint n8 = gl_NumWorkGroups.z * p.nrows;
    for (uint i = tid; 4u * i < R && r0w + 4u * i < p.nrows; i += WG)
        x8_word(vec4(q8_rows[4u * i], q8_rows[4u * i + 1u], q8_rows[4u * i + 2u], q8_rows[4u * i + 3u]),
                (z * p.nrows + r0w) / 4u + i, p.y8_off + v * p.y8_ld, n8);
}

// Word i, or the buffer's last word past its end (its bytes are then not used).
uint wcl(uint i) { return w[min(i, uint(w.length()) - 1u)]; }

// The 32-bit word of bytes [4k + 2, 4k + 6) (odd) or [4k, 4k + 4) from words a = k, b = k + 1.
uint fun(uint a, uint b, bool odd) { return odd ? (a >> 16) | (b << 16) : a; }

// Exact floats of integers below 2^23: v in the mantissa of 2^23, less 2^23.
vec4 uf4(uvec4 v) { return uintBitsToFloat(v | 0x4B000000u) - 8388608.0; }
// The 4 bytes of q as floats (unsigned, or signed for Q8_0 and a signed byte b: the sign bit
// flipped gives b + 128).
vec4 b4(uint q)
{
    uvec4 b = uvec4(q, q >> 8, q >> 16, q >> 24) & 255u;
    return TYPE == T_Q4_K || TYPE == T_Q5_K ? vec4(b) : uf4(b);
}
vec4 s4(uint q)
{
    q ^= 0x80808080u;
    return uintBitsToFloat((uvec4(q, q >> 8, q >> 16, q >> 24) & 255u) | 0x4B000000u) - 8388736.0;
}
float s1(uint b) { return uintBitsToFloat((b ^ 128u) | 0x4B000000u) - 8388736.0; }

// Byte offset of the block of task t in the row at byte rb.
uint blk(uint rb, uint t)
{
    if (TYPE == T_Q4_K) return rb + (t >> 3) * 144u;
    if (TYPE == T_Q5_K) return rb + (t >> 3) * 176u;
    if (TYPE == T_Q6_K) return rb + (t >> 3) * 210u;
    if (TYPE == T_Q8_0) return rb + t * 34u;
    if (TYPE == T_Q5_0) return rb + t * 22u;
    return rb + 16u * t;
}

// The raw words task t of the row at byte rb reads (loads only, no use of them).
void load_task(uint rb, uint t, out uint r[NWR])
{
    uint b = blk(rb, t), j = t & 7u;
    [[unroll]] for (uint k = 0u; k < NWR; k++)
        r[k] = 0u;
    if (XC) {
        bool q5 = TYPE == T_Q5_K;
        uvec4 hd = w4[b >> 4];
        uint q0 = (b + (q5 ? 48u : 16u) + 4u * j) >> 2;
        [[unroll]] for (uint k = 0u; k < 4u; k++) {
            r[k] = hd[k];
            r[4u + k] = w[q0 + 8u * k];
        }
        r[8] = q5 ? w[(b + 16u + 4u * j) >> 2] : 0u;
    } else if (TYPE == T_Q4_K || TYPE == T_Q5_K) {
        bool q5 = TYPE == T_Q5_K;
        uvec4 hd = w4[b >> 4], q = w4[(b + (q5 ? 48u : 16u) + 32u * (j >> 1) + 16u * (j & 1u)) >> 4];
        uvec4 qh = q5 ? w4[(b + 16u + 16u * (j & 1u)) >> 4] : uvec4(0u);
        [[unroll]] for (uint k = 0u; k < 4u; k++) {
            r[k] = hd[k];
            r[4u + k] = q[k];
            r[8u + k] = qh[k];
        }
    } else if (TYPE == T_Q6_K) {
        // half h = j >> 2, bytes l0 = 8·(j & 3) of its runs; all at b + a multiple of 4
        uint h = j >> 2, l0 = 8u * (j & 3u), i = b >> 2;
        uint o[4] = uint[4]((64u * h + l0) >> 2, (64u * h + 32u + l0) >> 2, (128u + 32u * h + l0) >> 2, (192u + 8u * h) >> 2);
        [[unroll]] for (uint s = 0u; s < 4u; s++) {
            r[3u * s] = w[i + o[s]];
            r[3u * s + 1u] = w[i + o[s] + 1u];
            r[3u * s + 2u] = wcl(i + o[s] + 2u);
        }
        r[12] = w[i + 52u];
    } else if (TYPE == T_Q8_0) {
        [[unroll]] for (uint k = 0u; k < 9u; k++)
            r[k] = w[(b >> 2) + k]; // 34-byte block at an even offset: inside words 0..8
    } else if (TYPE == T_Q5_0) {
        [[unroll]] for (uint k = 0u; k < 6u; k++)
            r[k] = w[(b >> 2) + k]; // 22-byte block at an even offset: inside words 0..5
    } else {
        uvec4 q = w4[b >> 4];
        [[unroll]] for (uint k = 0u; k < 4u; k++)
            r[k] = q[k];
    }
}

// Element of the row where the vec4 of x for slot k (0..NX-1) of task t starts.
uint x_elem(uint t, uint k)
{
    if (XC) // sub-block k: run k >> 1, low (even k) or high nibbles, column t & 7
        return (t >> 3) * 256u + 32u * k + 4u * (t & 7u);
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

// Four gain elements from element i (a multiple of 4; the gain row is 16-byte aligned), one
// vector load whatever the type (NORM variants only).
vec4 gain4(uint i)
{
    bool f32 = p.g_type == T_F32;
    uint byte = p.g_offset + (f32 ? 4u : 2u) * i;
    uvec4 q = g4[byte >> 4];
    uvec2 h = (byte & 8u) != 0u ? q.zw : q.xy;
    vec4 bf = uintBitsToFloat(uvec4(h.x << 16, h.x & 0xFFFF0000u, h.y << 16, h.y & 0xFFFF0000u));
    vec4 hf = vec4(unpackHalf2x16(h.x), unpackHalf2x16(h.y));
    return f32 ? uintBitsToFloat(q) : (p.g_type == T_BF16 ? bf : hf);
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

// A Q6_K task's words (load_task's 13 raw words, the block at an odd halfword `odd`): two
// words of low bits of each of its two runs, two of high bits, two of scales, and d.
struct Q6W {
    uvec2 L1, L2, H, sc;
    float d;
};
Q6W q6_words(uint r[NWR], bool odd)
{
    Q6W q;
    q.L1 = uvec2(fun(r[0], r[1], odd), fun(r[1], r[2], odd));
    q.L2 = uvec2(fun(r[3], r[4], odd), fun(r[4], r[5], odd));
    q.H = uvec2(fun(r[6], r[7], odd), fun(r[7], r[8], odd));
    q.sc = uvec2(fun(r[9], r[10], odd), fun(r[10], r[11], odd));
    q.d = unpackHalf2x16(odd ? r[12] >> 16 : r[12]).x;
    return q;
}
// The 4 codes (0..63) of word i of group gi of the task (x_elem's slot 2gi + i).
uint q6_codes(Q6W q, uint gi, uint i)
{
    uvec2 Lg = (gi & 1u) != 0u ? q.L2 : q.L1;
    return ((Lg[i] >> (4u * (gi >> 1))) & 0x0F0F0F0Fu) | (((q.H[i] >> (2u * gi)) & 0x03030303u) << 4);
}
// The signed scale of group gi of task j.
float q6_scale(Q6W q, uint j, uint gi)
{
    uint si = 2u * gi + (j & 3u) / 2u;
    return s1((q.sc[si >> 2] >> (8u * (si & 3u))) & 255u);
}

// Σ W[row at byte rb][task t] · x over the task's elements from its raw words r; xv as
// x_elem lays it out, xs the sums of its groups (Q4_K/Q5_K: the two nibble halves; Q6_K: four
// runs of 8; else the total).
float task_dot(uint rb, uint t, uint r[NWR], vec4 xv[8], vec4 xs)
{
    bool odd = (blk(rb, t) & 2u) != 0u;
    uint j = t & 7u;
    if (X_NOMATH) {
        uint f = 0u;
        [[unroll]] for (uint k = 0u; k < NWR; k++)
            f ^= r[k];
        return uintBitsToFloat((f & 0x007FFFFFu) | 0x3F800000u) * (xs.x + xs.y + xs.z + xs.w);
    }
    if (XC) {
        // scales and mins of sub-blocks 0..3 (low 6 bits of bytes 0..7) and 4..7 (bytes 8..11
        // with the top bits of bytes 0..7), four to a word
        uint s0 = r[1], s1 = r[2], s2 = r[3];
        vec4 scA = b4(s0 & 0x3F3F3F3Fu), mA = b4(s1 & 0x3F3F3F3Fu);
        vec4 scB = b4((s2 & 0x0F0F0F0Fu) | ((s0 >> 2) & 0x30303030u));
        vec4 mB = b4(((s2 >> 4) & 0x0F0F0F0Fu) | ((s1 >> 2) & 0x30303030u));
        vec2 dm = unpackHalf2x16(r[0]);
        float dots[8], sums[8];
        [[unroll]] for (uint g = 0u; g < 4u; g++) {
            uint ql = r[4u + g] & 0x0F0F0F0Fu, qu = (r[4u + g] >> 4) & 0x0F0F0F0Fu;
            if (TYPE == T_Q5_K) {
                ql |= ((r[8] >> (2u * g)) & 0x01010101u) << 4;
                qu |= ((r[8] >> (2u * g + 1u)) & 0x01010101u) << 4;
            }
            dots[2u * g] = dot(b4(ql), xv[2u * g]);
            dots[2u * g + 1u] = dot(b4(qu), xv[2u * g + 1u]);
        }
        [[unroll]] for (uint k = 0u; k < 8u; k++)
            sums[k] = xv[k].x + xv[k].y + xv[k].z + xv[k].w;
        vec4 dA = vec4(dots[0], dots[1], dots[2], dots[3]), dB = vec4(dots[4], dots[5], dots[6], dots[7]);
        vec4 xA = vec4(sums[0], sums[1], sums[2], sums[3]), xB = vec4(sums[4], sums[5], sums[6], sums[7]);
        return dm.x * (dot(scA, dA) + dot(scB, dB)) - dm.y * (dot(mA, xA) + dot(mB, xB));
    }
    if (TYPE == T_Q4_K || TYPE == T_Q5_K) {
        uint pr = j >> 1;
        vec2 dm = unpackHalf2x16(r[0]);
        vec2 a = scmin(r[1], r[2], r[3], 2u * pr), c = scmin(r[1], r[2], r[3], 2u * pr + 1u);
        float lo = 0.0, hi = 0.0;
        [[unroll]] for (uint i = 0u; i < 4u; i++) {
            uint ql = r[4u + i] & 0x0F0F0F0Fu, qu = (r[4u + i] >> 4) & 0x0F0F0F0Fu;
            if (TYPE == T_Q5_K) {
                ql |= ((r[8u + i] >> (2u * pr)) & 0x01010101u) << 4;
                qu |= ((r[8u + i] >> (2u * pr + 1u)) & 0x01010101u) << 4;
            }
            lo += dot(b4(ql), xv[i]);
            hi += dot(b4(qu), xv[4u + i]);
        }
        return dm.x * (a.x * lo + c.x * hi) - dm.y * (a.y * xs.x + c.y * xs.y);
    } else if (TYPE == T_Q6_K) {
        Q6W q = q6_words(r, odd);
        float acc = 0.0;
        [[unroll]] for (uint gi = 0u; gi < 4u; gi++) {
            float s = dot(b4(q6_codes(q, gi, 0u)), xv[2u * gi]) + dot(b4(q6_codes(q, gi, 1u)), xv[2u * gi + 1u]);
            acc += q6_scale(q, j, gi) * (s - 32.0 * xs[gi]);
        }
        return q.d * acc;
    } else if (TYPE == T_Q8_0) {
        // scale in the low (even offset) or high half of word 0, codes from byte 2
        float d = unpackHalf2x16(odd ? r[0] >> 16 : r[0]).x;
        float acc = 0.0;
        [[unroll]] for (uint k = 0u; k < 8u; k++)
            acc += dot(s4(odd ? r[k + 1u] : (r[k] >> 16) | (r[k + 1u] << 16)), xv[k]);
        return d * acc;
    } else if (TYPE == T_Q5_0) {
        // scale, then 4 bytes of high bits, then 16 bytes of codes
        float d = unpackHalf2x16(odd ? r[0] >> 16 : r[0]).x;
        uint qh = odd ? r[1] : (r[0] >> 16) | (r[1] << 16);
        float acc = 0.0;
        [[unroll]] for (uint k = 0u; k < 4u; k++) {
            uint q = odd ? r[k + 2u] : (r[k + 1u] >> 16) | (r[k + 2u] << 16);
            uint hl = (qh >> (4u * k)) & 15u, hu = (qh >> (16u + 4u * k)) & 15u;
            uint sl = (hl & 1u) | ((hl & 2u) << 7) | ((hl & 4u) << 14) | ((hl & 8u) << 21);
            uint su = (hu & 1u) | ((hu & 2u) << 7) | ((hu & 4u) << 14) | ((hu & 8u) << 21);
            acc += dot(b4((q & 0x0F0F0F0Fu) | (sl << 4)), xv[k]) +
                   dot(b4(((q >> 4) & 0x0F0F0F0Fu) | (su << 4)), xv[4u + k]);
        }
        return d * (acc - 16.0 * xs.x);
    }
    return dot(uintBitsToFloat(uvec4(r[0], r[1], r[2], r[3])), xv[0]); // F32
}

#ifdef MATVEC_Q8
// Σ W[row at byte rb][task t] · x8 over the task's 32 elements from its raw words r, with the
// task's 8 words of x codes qa, qb (Q4_K/Q5_K: those of sub-blocks 0..3 and 4..7; Q6_K: of its
// element groups k = 0, 2, 4, 6 and 1, 3, 5, 7) and their scales da, db.
float task_dot_q8(uint rb, uint t, uint r[NWR], uvec4 qa, uvec4 qb, vec4 da, vec4 db)
{
    uint j = t & 7u;
    const int ONES = 0x01010101;
    if (XC) {
        uint s0 = r[1], s1 = r[2], s2 = r[3];
        uint scA = s0 & 0x3F3F3F3Fu, scB = (s2 & 0x0F0F0F0Fu) | ((s0 >> 2) & 0x30303030u);
        uint mA = s1 & 0x3F3F3F3Fu, mB = ((s2 >> 4) & 0x0F0F0F0Fu) | ((s1 >> 2) & 0x30303030u);
        vec2 dm = unpackHalf2x16(r[0]);
        uint xq[8] = uint[8](qa.x, qa.y, qa.z, qa.w, qb.x, qb.y, qb.z, qb.w);
        float dx[8] = float[8](da.x, da.y, da.z, da.w, db.x, db.y, db.z, db.w);
        float acc = 0.0, accm = 0.0;
        [[unroll]] for (uint g = 0u; g < 4u; g++) {
            uint ql = r[4u + g] & 0x0F0F0F0Fu, qu = (r[4u + g] >> 4) & 0x0F0F0F0Fu;
            if (TYPE == T_Q5_K) {
                ql |= ((r[8] >> (2u * g)) & 0x01010101u) << 4;
                qu |= ((r[8] >> (2u * g + 1u)) & 0x01010101u) << 4;
            }
            uint sw = g < 2u ? scA : scB, mw = g < 2u ? mA : mB, sh = 16u * (g & 1u);
            int xl = int(xq[2u * g]), xu = int(xq[2u * g + 1u]);
            int il = sdot4(int(ql), xl, 0), iu = sdot4(int(qu), xu, 0);
            int sl = sdot4(ONES, xl, 0), su = sdot4(ONES, xu, 0);
            acc += dx[2u * g] * float(il * int((sw >> sh) & 63u)) + dx[2u * g + 1u] * float(iu * int((sw >> (sh + 8u)) & 63u));
            accm += dx[2u * g] * float(sl * int((mw >> sh) & 63u)) + dx[2u * g + 1u] * float(su * int((mw >> (sh + 8u)) & 63u));
        }
        return dm.x * acc - dm.y * accm;
    }
    // Q6_K: as task_dot, the codes 0..63 against x8, less 32 times the x codes' sum
    Q6W q = q6_words(r, (blk(rb, t) & 2u) != 0u);
    float acc = 0.0;
    [[unroll]] for (uint gi = 0u; gi < 4u; gi++) {
        int xa = int(qa[gi]), xb = int(qb[gi]);
        int s0 = sdot4(int(q6_codes(q, gi, 0u)), xa, 0) - 32 * sdot4(ONES, xa, 0);
        int s1_ = sdot4(int(q6_codes(q, gi, 1u)), xb, 0) - 32 * sdot4(ONES, xb, 0);
        acc += q6_scale(q, j, gi) * (da[gi] * float(s0) + db[gi] * float(s1_));
    }
    return q.d * acc;
}
#endif

// X_STREAM: the weight rows streamed end to end by the whole grid (16-byte loads, 4 in flight a
// lane), nothing computed: what the grid can read at best
void stream_rows()
{
    uint n16 = p.nrows * p.row_bytes / 16u, b16 = p.w_offset / 16u;
    uint stride = gl_NumWorkGroups.x * WG, i = gl_WorkGroupID.x * WG + gl_LocalInvocationID.x;
    uvec4 acc = uvec4(0u);
    for (; i < n16; i += 4u * stride) {
        uvec4 a = w4[b16 + i], b = w4[b16 + min(i + stride, n16 - 1u)];
        uvec4 c = w4[b16 + min(i + 2u * stride, n16 - 1u)], d = w4[b16 + min(i + 3u * stride, n16 - 1u)];
        acc ^= a ^ b ^ c ^ d;
    }
    if (acc.x == 0x9E3779B9u && acc.y == 0x7F4A7C15u)
        y[p.y_off] = 1.0;
}

void main()
{
    if (X_STREAM) {
        stream_rows();
        return;
    }
    uint tid = gl_LocalInvocationID.x, tpr = p.tpr;
    uint lane = tid % tpr, slice = tid / tpr;
    uint nsl = KS2 ? WG / tpr / 2u : WG / tpr; // rows (of NR) a workgroup
    uint half_ = KS2 ? slice / nsl : 0u, rs = KS2 ? slice % nsl : slice;
    uint r0 = (gl_WorkGroupID.x * nsl + rs) * NR;
    uint v = gl_WorkGroupID.y, z = gl_WorkGroupID.z;
    uint wbase = p.w_offset + z * p.slab_bytes;
    uint xrow = v;
    if (COMB) { // v is the token: its experts' slabs, x rows and weights for the whole workgroup
        if (tid < p.k) {
            comb_wb[tid] = p.w_offset + uint(ids[p.ids_off + v * p.ids_ld + tid]) * p.slab_bytes;
            comb_xo[tid] = (p.x_off + (v * p.k + tid) * p.x_ld) >> 2;
            comb_w[tid] = gw[p.g_offset + v * p.g_type + tid];
        }
        barrier();
    } else if (p.mode != 0u) {
        uint t = v / p.k, j = v % p.k;
        wbase = p.w_offset + uint(ids[p.ids_off + t * p.ids_ld + j]) * p.slab_bytes;
        xrow = p.mode == 1u ? t : v;
    }
    uint w2base = wbase - p.w_offset + p.w2_offset;
    uint xo = (p.x_off + z * p.x_zs + xrow * p.x_ld) >> 2; // in vec4s
    const bool fuse = FUSE != 0u;
    uint rowb[NRMAX];
    [[unroll]] for (uint r = 0u; r < NR; r++)
        rowb[r] = min(r0 + r, p.nrows - 1u) * p.row_bytes;
    float acc[NRMAX], acc2[NRMAX];
    [[unroll]] for (uint r = 0u; r < NR; r++) {
        acc[r] = 0.0;
        acc2[r] = 0.0;
    }
    float sq = 0.0;
    uint ntask = p.ncols / EPT, n4 = p.ncols / 4u;
    uint ntall = COMB ? p.k * ntask : ntask; // COMB: the k experts' tasks in one list
    // KS2: the halves take alternate rounds of tpr tasks (the host ensures each has one, so
    // that both reach the staging barrier)
    uint rstride = KS2 ? 2u * tpr : tpr;
    for (uint t0 = half_ * tpr, it = 0u; t0 < ntall; t0 += U * rstride, it++) {
        // tasks of this group (past the end: task 0 again, its result dropped)
        uint tk[UMAX], wbu[UMAX], xou[UMAX];
        float keep[UMAX];
        [[unroll]] for (uint u = 0u; u < U; u++) {
            uint t = t0 + u * rstride + lane;
            keep[u] = t < ntall ? 1.0 : 0.0;
            tk[u] = t < ntall ? t : 0u;
            wbu[u] = wbase;
            xou[u] = xo;
            if (COMB) { // expert e's task: its slab, its x row, its weight folded into keep
                uint e = tk[u] / ntask;
                tk[u] -= e * ntask;
                wbu[u] = comb_wb[e];
                xou[u] = comb_xo[e];
                keep[u] *= comb_w[e];
            }
        }
        // 1. every weight word of the group
        uint raw[UMAX][NRMAX][NWR], raw2[UMAX][NRMAX][NWR];
        [[unroll]] for (uint u = 0u; u < U; u++)
            [[unroll]] for (uint r = 0u; r < NR; r++) {
                load_task(wbu[u] + rowb[r], tk[u], raw[u][r]);
                if (fuse)
                    load_task(w2base + rowb[r], tk[u], raw2[u][r]);
            }
        // 2. (STAGE, first group) the workgroup's row of x into shared memory, normed
        if (STAGE && it == 0u) {
            for (uint i0 = 0u; i0 < n4; i0 += XSTEP * WG) {
                vec4 sx[XSTEP], sg[XSTEP];
                [[unroll]] for (uint s = 0u; s < XSTEP; s++) {
                    uint i = min(i0 + s * WG + tid, n4 - 1u);
                    sx[s] = x4[xo + i];
                    sg[s] = NORM ? gain4(4u * i) : vec4(1.0);
                }
                [[unroll]] for (uint s = 0u; s < XSTEP; s++) {
                    uint i = i0 + s * WG + tid;
                    if (i < n4) {
                        if (NORM)
                            sq += dot(sx[s], sx[s]);
                        xsh[i + (i >> XPAD)] = sx[s] * sg[s];
                    }
                }
            }
            if (NORM) {
                sq = subgroupAdd(sq);
                if (gl_SubgroupInvocationID == 0u)
                    sqsh[gl_SubgroupID] = sq;
            }
            barrier();
            if (NORM) {
                sq = 0.0;
                for (uint s = 0u; s < gl_NumSubgroups; s++)
                    sq += sqsh[s];
            }
        }
#ifdef MATVEC_Q8
        // 3. (Q8X) the tasks' 8 words of x codes and their scales
        uvec4 qa[UMAX], qb[UMAX];
        vec4 da[UMAX], db[UMAX];
        [[unroll]] for (uint u = 0u; u < U; u++) {
            uint sb = tk[u] >> 3, j = tk[u] & 7u;
            uint wi = 4u * xou[u] + 64u * sb + (XC ? 8u * j : 16u * (j & 3u) + 4u * (j >> 2)), step = XC ? 1u : 2u;
            qa[u] = xq4[wi >> 2];
            qb[u] = xq4[(wi >> 2) + step];
            da[u] = x4[(wi + p.ncols / 4u) >> 2];
            db[u] = x4[((wi + p.ncols / 4u) >> 2) + step];
        }
        // 4. (Q8X) the math
        [[unroll]] for (uint u = 0u; u < U; u++)
            [[unroll]] for (uint r = 0u; r < NR; r++) {
                acc[r] += keep[u] * task_dot_q8(wbu[u] + rowb[r], tk[u], raw[u][r], qa[u], qb[u], da[u], db[u]);
                if (fuse)
                    acc2[r] += keep[u] * task_dot_q8(w2base + rowb[r], tk[u], raw2[u][r], qa[u], qb[u], da[u], db[u]);
            }
        if (Q8X)
            continue;
#endif
        // 3. x and the gain (the staged x is normed already)
        vec4 xv[UMAX][8], gv[UMAX][8];
        [[unroll]] for (uint u = 0u; u < U; u++)
            [[unroll]] for (uint kk = 0u; kk < 8u; kk++) {
                uint e = x_elem(tk[u], kk < NX ? kk : 0u), i = e >> 2;
                xv[u][kk] = kk >= NX ? vec4(0.0) : STAGE ? xsh[i + (i >> XPAD)] : x4[xou[u] + i];
                if (X_ONEX && kk > 0u)
                    xv[u][kk] = xv[u][0] * float(kk); // one x load a task (measurement only)
                gv[u][kk] = NORM && !STAGE && kk < NX ? gain4(e) : vec4(1.0);
            }
        // 4. the math
        [[unroll]] for (uint u = 0u; u < U; u++) {
            vec4 xs = vec4(0.0);
            [[unroll]] for (uint kk = 0u; kk < NX; kk++) {
                if (NORM && !STAGE) {
                    sq += keep[u] * dot(xv[u][kk], xv[u][kk]);
                    xv[u][kk] *= gv[u][kk];
                }
                float s = xv[u][kk].x + xv[u][kk].y + xv[u][kk].z + xv[u][kk].w;
                if (TYPE == T_Q4_K || TYPE == T_Q5_K)
                    xs[kk >> 2] += s;
                else if (TYPE == T_Q6_K)
                    xs[kk >> 1] += s;
                else
                    xs.x += s;
            }
            [[unroll]] for (uint r = 0u; r < NR; r++) {
                acc[r] += keep[u] * task_dot(wbu[u] + rowb[r], tk[u], raw[u][r], xv[u], xs);
                if (fuse)
                    acc2[r] += keep[u] * task_dot(w2base + rowb[r], tk[u], raw2[u][r], xv[u], xs);
            }
        }
    }
    // sums over the slice's lanes (a slice lies inside one subgroup)
    for (uint m = 1u; m < tpr; m <<= 1) {
        if (NORM && !STAGE)
            sq += subgroupShuffleXor(sq, m);
        [[unroll]] for (uint r = 0u; r < NR; r++) {
            acc[r] += subgroupShuffleXor(acc[r], m);
            if (fuse)
                acc2[r] += subgroupShuffleXor(acc2[r], m);
        }
    }
    if (KS2) {
        if (half_ == 1u && lane == 0u) {
            [[unroll]] for (uint r = 0u; r < NR; r++) {
                kssh[5u * rs + r] = acc[r];
                kssh[5u * rs + 2u + r] = acc2[r];
            }
            kssh[5u * rs + 4u] = sq;
        }
        barrier();
        if (half_ == 1u && !Q8OUT)
            return; // whole subgroups (the second half of the workgroup)
        [[unroll]] for (uint r = 0u; r < NR; r++) {
            acc[r] += kssh[5u * rs + r];
            acc2[r] += kssh[5u * rs + 2u + r];
        }
        if (NORM && !STAGE)
            sq += kssh[5u * rs + 4u];
    }
    bool writer = !KS2 || half_ == 0u; // (Q8OUT: the second half stays for the barriers)
    float scale = NORM ? 1.0 / sqrt(sq / float(p.ncols) + p.eps) : 1.0;
    if (ROPE) {
        // one row a slice: the pair (2i, 2i + 1) of a head's rope channels is two neighbouring
        // slices of one subgroup (lanes l and l ^ tpr; every lane holds its slice's sum), rotated
        // as rope.comp rotates it; rows outside the rope channels, or at a position past the
        // table, as they are
        float a = acc[0] * scale, other = subgroupShuffleXor(a, tpr);
        uint hd = r0 % p.head_dim;
        int ps = pos[p.pos_off + v * p.pos_ld];
        if (hd >= p.rope_off && hd < p.rope_off + p.rope_dim && ps >= 0 && uint(ps) < p.table_positions) {
            uint j = hd - p.rope_off, c = (uint(ps) * (p.rope_dim / 2u) + (j >> 1)) * 2u;
            vec2 an = vec2(cs[c], cs[c + 1u]);
            a = (j & 1u) == 0u ? a * an.x - other * an.y : a * an.x + other * an.y;
        }
        if (lane == 0u && r0 < p.nrows) {
            uint yi = p.y_off + z * p.y_zs + v * p.y_ld + r0;
            y[yi] = p.accumulate != 0u ? y[yi] + a : a;
        }
        return;
    }
    [[unroll]] for (uint r = 0u; r < NR; r++)
        if (writer && lane == 0u && r0 + r < p.nrows) {
            uint yi = p.y_off + z * p.y_zs + v * p.y_ld + r0 + r;
            float a = acc[r] * scale, a2 = acc2[r] * scale;
            float res = fuse ? (a / (1.0 + exp(-a))) * a2 : a;
            float o = p.accumulate != 0u ? y[yi] + res : res;
            y[yi] = o;
            if (Q8OUT)
                q8_rows[rs * NR + r] = o;
        }
    if (Q8OUT)
        q8_out(tid, gl_WorkGroupID.x * nsl * NR, nsl * NR, v, z);
}
