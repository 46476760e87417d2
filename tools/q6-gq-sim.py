# Host simulation of matmul_gq's Q6_K staging (shaders/coopmat/matmul_gq.comp: q6_fetch,
# stash_q6 and stash_x's Q6 order), GLM_VK_GQ_Q6=1. For random Q6_K rows of two blocks placed
# 0 and 2 bytes past a word (a block's two alignments), it plays the four lanes of a row: their
# word loads, the shuffles that funnel misaligned words, the decoding into staged columns, and
# x's staging of the same step; the staged weight and x rows of every 64-column step must give
# the reference dequantization's dot product (in float64: the float16 roundings are left out).
# Run: python3 tools/q6-gq-sim.py
import random, struct
random.seed(7)

def ref_dequant(block):
    ql = block[0:128]; qh = block[128:192]; sc = [struct.unpack('b', bytes([b]))[0] for b in block[192:208]]
    d = struct.unpack('<e', bytes(block[208:210]))[0]
    y = [0.0]*256
    for n in range(2):
        for l in range(32):
            is_ = l // 16
            q1 = (ql[64*n + l] & 0xF) | (((qh[32*n + l] >> 0) & 3) << 4)
            q2 = (ql[64*n + l + 32] & 0xF) | (((qh[32*n + l] >> 2) & 3) << 4)
            q3 = (ql[64*n + l] >> 4) | (((qh[32*n + l] >> 4) & 3) << 4)
            q4 = (ql[64*n + l + 32] >> 4) | (((qh[32*n + l] >> 6) & 3) << 4)
            y[128*n + l] = d * sc[8*n + is_ + 0] * (q1 - 32)
            y[128*n + l + 32] = d * sc[8*n + is_ + 2] * (q2 - 32)
            y[128*n + l + 64] = d * sc[8*n + is_ + 4] * (q3 - 32)
            y[128*n + l + 96] = d * sc[8*n + is_ + 6] * (q4 - 32)
    return y

def word(buf, i):
    return struct.unpack_from('<I', buf, 4*i)[0]

def sx8(v): return v - 256 if v >= 128 else v

def run(misalign):
    nblk = 2
    # a row of 2 blocks placed at byte offset `misalign` (0 or 2) in a word buffer
    blocks = []
    for _ in range(nblk):
        b = bytearray(random.getrandbits(8) for _ in range(208))
        b += struct.pack('<e', random.uniform(0.001, 0.01))
        blocks.append(b)
    buf = bytearray(misalign) + b''.join(blocks) + bytearray(16)
    ref = sum((ref_dequant(b) for b in blocks), [])
    x = [random.uniform(-1, 1) for _ in range(256 * nblk)]
    row0 = misalign
    nsteps = nblk * 4  # steps of 64 columns: 2 a half block, 4 a block
    for st in range(nsteps):
        hb, qp = st // 2, st % 2
        # lanes j = 0..3 of one row: fetch
        A = {}; H = {}; S = {}; D = {}
        for j in range(4):
            base = row0 + (hb // 2) * 210; h = hb % 2
            iq = (base + 64*h) >> 2; ih = (base + 128 + 32*h) >> 2; is_ = (base + 192 + 8*h) >> 2
            sh = (base & 3) * 8; od = base + 208
            A[j] = [word(buf, iq + j + 4*i) for i in range(4)]
            H[j] = [word(buf, ih + j + 4*i) for i in range(2)]
            S[j] = [word(buf, is_ + k) for k in range(3)]
            dw = word(buf, od >> 2)
            D[j] = struct.unpack('<e', struct.pack('<H', (dw >> ((od & 3)*8)) & 0xffff))[0]
            A[j].append(word(buf, iq + 16)); H[j].append(word(buf, ih + 8))  # eq, eh
        if sh:
            nA = {}; nH = {}
            for j in range(4):
                src = (j + 1) & 3
                vA = A[src][1:5] if src == 0 else A[src][0:4]
                vH = [H[src][1], H[src][2]] if src == 0 else H[src][0:2]
                nA[j] = vA; nH[j] = vH
            for j in range(4):
                A[j] = [((A[j][i] >> 16) | (nA[j][i] << 16)) & 0xffffffff for i in range(4)]
                H[j] = [((H[j][i] >> 16) | (nH[j][i] << 16)) & 0xffffffff for i in range(2)]
                S[j] = [((S[j][0] >> 16) | (S[j][1] << 16)) & 0xffffffff, ((S[j][1] >> 16) | (S[j][2] << 16)) & 0xffffffff]
        else:
            for j in range(4):
                A[j] = A[j][0:4]; H[j] = H[j][0:2]; S[j] = S[j][0:2]
        # stash: staged weights of the step (64 positions), in float64 (rounding aside)
        staged_w = [None]*64
        for j in range(4):
            for qq in range(2):
                q = 2*qp + qq
                for pp in range(2):
                    c = ((A[j][pp + 2*qq] >> (4*qp)) & 0x0F0F0F0F) | (((H[j][pp] >> (2*q)) & 0x03030303) << 4)
                    si = 2*q + pp
                    scale = sx8((S[j][si // 4] >> (8*(si % 4))) & 0xff)
                    bts = [(c >> (8*k)) & 0xff for k in range(4)]
                    vals = [D[j] * scale * (bb - 32) for bb in bts]
                    # pairs (0,2) then (1,3)
                    order = [vals[0], vals[2], vals[1], vals[3]]
                    for t in range(4):
                        staged_w[32*qq + 8*j + 4*pp + t] = order[t]
        # x stash: two x_half threads (quarters) of one slot
        staged_x = [None]*64
        for xh in range(2):
            cols = [64*st + 32*xh + k for k in range(32)]
            halves = [x[c] for c in cols]
            # xr[v] words k: halves (8v+2k, 8v+2k+1)
            for j in range(4):
                lo = 8*(j//2) + 4*(j % 2); hi = 16 + lo
                w0 = (halves[lo], halves[lo+1]); w1 = (halves[lo+2], halves[lo+3])
                w2 = (halves[hi], halves[hi+1]); w3 = (halves[hi+2], halves[hi+3])
                out = [w0[0], w1[0], w0[1], w1[1], w2[0], w3[0], w2[1], w3[1]]
                for t in range(8):
                    staged_x[32*xh + 8*j + t] = out[t]
        got = sum(a*b for a, b in zip(staged_w, staged_x))
        want = sum(ref[64*st + k] * x[64*st + k] for k in range(64))
        assert abs(got - want) <= 1e-9 * (1 + abs(want)), (misalign, st, got, want)
    return True

for m in (0, 2):
    for trial in range(50):
        run(m)
print("q6 staging simulation: aligned and misaligned, 50 rows each, every step matches")
