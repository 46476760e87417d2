// The routing of one token by one workgroup of ROUTE_WG invocations (model-spec §3.2),
// mirroring ref/moe.c: scores s = sigmoid(z) (or softmax over E), selection on s + bias (bias
// only chooses), group limit (groups outside the topk_group best, scored by the sum of their
// two largest selection scores, are dropped), top-k with ties to the lower index, weights from
// the unbiased s, normalized over the k (+1e-20) when norm_topk_prob, then x scaling. ids are
// written ascending with their weights in the same order. E <= 256, k <= 8.
// Invocation tid holds experts tid, tid + ROUTE_WG, .. in registers. Sigmoid scores and the
// experts' ranks run across the workgroup (each invocation ranks its experts against all of
// them); the softmax and the group scores stay sequential. The k winners go to shared memory,
// and invocation r < k writes the id of rank r with its weight (and invocation k the extra
// column, where p.extra asks for one).
// Requires, declared before including this file: `float logits[]`, `uint w[]` (the bias, with
// dequant.glsl), `int ids[]`, `float wts[]`, push constants p with the fields of
// glm_vk_moe_route_push (src/backend/vk/ops.h) first, and ROUTE_WG (the workgroup size: 64 or
// 256). route_bias(tid) must run before route(t, tid); it may run long before (the fused
// router does it first, so that the bias loads overlap its product).

#define ROUTE_PER (256u / ROUTE_WG) // experts per invocation

shared float s[256];
shared float sel[256];
shared float gscore[32];
shared uint keep; // bitmask of kept groups (n_group <= 32)
shared uint chosen[8]; // the k winners in rank order
shared uint by_id[8];  // and in ascending id order

float rbias[ROUTE_PER]; // this invocation's experts' biases (0 without one)

// Bias element e. An includer that knows the bias's class at pipeline creation defines
// ROUTE_BIAS_CLASS (0 F32, 1 F16, 2 BF16, 3 any type) and gets one read instead of dequant's
// switch over every type.
float bias_at(uint e)
{
#ifdef ROUTE_BIAS_CLASS
    if (ROUTE_BIAS_CLASS == 0u)
        return uintBitsToFloat(w[(p.bias_offset >> 2) + e]);
    if (ROUTE_BIAS_CLASS < 3u) {
        uint b = p.bias_offset + 2u * e, word = w[b >> 2], h = (b & 2u) != 0u ? word >> 16 : word & 0xFFFFu;
        return ROUTE_BIAS_CLASS == 2u ? uintBitsToFloat(h << 16) : unpackHalf2x16(h).x;
    }
#endif
    uint be = blk_elems(p.bias_type);
    return dequant(p.bias_type, p.bias_offset + (e / be) * blk_bytes(p.bias_type), e % be);
}

void route_bias(uint tid)
{
    [[unroll]] for (uint j = 0u; j < ROUTE_PER; j++) {
        uint e = tid + ROUTE_WG * j;
        rbias[j] = p.has_bias != 0u && e < p.n_exp ? bias_at(e) : 0.0;
    }
}

void route(uint t, uint tid)
{
    uint lb = p.l_off + t * p.l_ld;
    float mine[ROUTE_PER]; // selection scores
    bool free_[ROUTE_PER]; // an expert (id below E)
    if (p.sigmoid_gate != 0u) {
        [[unroll]] for (uint j = 0u; j < ROUTE_PER; j++) {
            uint e = tid + ROUTE_WG * j;
            free_[j] = e < p.n_exp;
            float sv = free_[j] ? 1.0 / (1.0 + exp(-logits[lb + min(e, p.n_exp - 1u)])) : 0.0;
            if (free_[j])
                s[e] = sv;
            mine[j] = sv + rbias[j];
        }
    } else {
        if (tid == 0u) {
            float mx = logits[lb];
            for (uint e = 1u; e < p.n_exp; e++)
                mx = max(mx, logits[lb + e]);
            float sum = 0.0;
            for (uint e = 0u; e < p.n_exp; e++) {
                s[e] = exp(logits[lb + e] - mx);
                sum += s[e];
            }
            for (uint e = 0u; e < p.n_exp; e++)
                s[e] /= sum;
        }
        barrier();
        [[unroll]] for (uint j = 0u; j < ROUTE_PER; j++) {
            uint e = tid + ROUTE_WG * j;
            free_[j] = e < p.n_exp;
            mine[j] = (free_[j] ? s[min(e, p.n_exp - 1u)] : 0.0) + rbias[j];
        }
    }
    // group limit
    if (p.n_group > 1u) {
        uint gs = p.n_exp / p.n_group;
        [[unroll]] for (uint j = 0u; j < ROUTE_PER; j++)
            if (free_[j])
                sel[tid + ROUTE_WG * j] = mine[j];
        barrier();
        if (tid < p.n_group) {
            float m1 = -1.0 / 0.0, m2 = -1.0 / 0.0;
            for (uint e = tid * gs; e < (tid + 1u) * gs; e++) {
                float v = sel[e];
                if (v > m1) { m2 = m1; m1 = v; } else if (v > m2) { m2 = v; }
            }
            gscore[tid] = gs >= 2u ? m1 + m2 : m1;
        }
        barrier();
        if (tid == 0u) {
            uint kp = 0u;
            for (uint n = 0u; n < p.topk_group; n++) {
                int best = -1;
                for (uint g = 0u; g < p.n_group; g++)
                    if ((kp & (1u << g)) == 0u && (best < 0 || gscore[g] > gscore[uint(best)]))
                        best = int(g);
                kp |= 1u << uint(best);
            }
            keep = kp;
        }
        barrier();
        [[unroll]] for (uint j = 0u; j < ROUTE_PER; j++)
            if (free_[j] && (keep & (1u << ((tid + ROUTE_WG * j) / gs))) == 0u)
                mine[j] = -1.0 / 0.0;
    }
    // top-k, ties to the lower index, by rank: an expert's rank is the count of experts ahead of
    // it in the order (higher score, then lower index), so experts at -inf (dropped groups) still
    // come after all the others, lowest index first, and the k of rank < k are chosen. Every
    // invocation ranks its own experts against all of them in shared memory (broadcast reads),
    // and the one of rank r writes its id to chosen[r]: three barriers with the placing below,
    // whatever k is, where k arg-max rounds took a barrier and two subgroup reductions each
    // (bench/RESULTS.md). The barrier after sel also makes s visible to every invocation.
    [[unroll]] for (uint j = 0u; j < ROUTE_PER; j++)
        if (free_[j])
            sel[tid + ROUTE_WG * j] = mine[j];
    barrier();
    [[unroll]] for (uint j = 0u; j < ROUTE_PER; j++) {
        uint e = tid + ROUTE_WG * j, rk = 0u;
        float v = mine[j];
        for (uint e0 = 0u; e0 < p.n_exp; e0 += 8u)
            [[unroll]] for (uint i = 0u; i < 8u; i++) {
                uint e2 = e0 + i;
                float v2 = sel[min(e2, p.n_exp - 1u)];
                rk += e2 < p.n_exp && (v2 > v || (v2 == v && e2 < e)) ? 1u : 0u;
            }
        if (free_[j] && rk < p.k)
            chosen[rk] = e;
    }
    barrier(); // chosen[] complete
    // invocation r < k places winner r by its id, then writes the id of rank r (ascending) and
    // its weight; the denominator sums the scores in ascending id order, as ref/moe.c does
    if (tid < p.k) {
        uint c = chosen[tid], at = 0u;
        for (uint m = 0u; m < p.k; m++)
            at += chosen[m] < c ? 1u : 0u;
        by_id[at] = c;
    }
    barrier();
    if (tid < p.k) {
        float denom = 0.0;
        for (uint r = 0u; r < p.k; r++)
            denom += s[by_id[r]];
        uint id = by_id[tid];
        float wv = s[id];
        if (p.norm_topk != 0u)
            wv /= denom + 1e-20;
        ids[p.ids_off + t * p.ids_ld + tid] = int(id);
        wts[p.w_off + t * p.w_ld + tid] = wv * p.scale;
    }
    // p.extra = id + 1: a (k+1)-th column, that id with weight 1 (the shared expert held as one
    // more expert by the products that follow)
    if (p.extra != 0u && tid == p.k) {
        ids[p.ids_off + t * p.ids_ld + tid] = int(p.extra - 1u);
        wts[p.w_off + t * p.w_ld + tid] = 1.0;
    }
}
