#!/usr/bin/env python3
"""Train golden/default/: a small model of the exact GLM-4.7-Flash architecture
(transformers' Glm4MoeLiteForCausalLM: MLA attention, a dense first layer, sigmoid-routed MoE
with a shared expert and the router correction bias, n_group = topk_group = 1) plus one MTP
layer trained jointly on the next-next token, on the Python standard library sources of the
machine it runs on, with its own byte-level BPE tokenizer (GLM-4 split, GLM special tokens).

Runs where torch (with a CUDA GPU), transformers 5.17, tokenizers, safetensors and h5py exist
(the GPU host); no internet. golden/default/README.md gives the exact command and the results.

    python3 golden/train/train.py --out DIR [--minutes 6.5] [--tiny]

Corpus: the Python sources installed on the machine: every *.py of at most MAX_FILE bytes under
the standard library directory (dirname(os.__file__); key "stdlib/<relative path>") and the
site-packages directories (key "site/<relative path>"), taken in the order of sha256(key) up to
--max-bytes, UTF-8 files only, identical contents once. The split is by the key's hash:
bucket = first 4 bytes of sha256(key), big endian, % 100; bucket 0 is the validation part (the
loss curve, and the checkpoint kept), bucket 1 the test part (heldout.txt and the final test
loss; never used for a choice), the rest is trained on. Files are joined as
<|endoftext|> file <|endoftext|> file ...; training windows are random.

Model (MTP rows as model-spec §5.2 and golden/gen/make_golden.py compute them): with h_p the
main model's hidden state after the final norm and t_{p+1} the next token,
    u = eh_proj(cat[enorm(embed(t_{p+1})), hnorm(h_p)]); r = DecoderLayer_L(u, position p)
    mtp_logits_p = head(shared_head.norm(r))  -> trained on t_{p+2}
The MTP block shares the main embedding and head during training (as DeepSeek-V3 does) and is
exported with its own copies (model.layers.L.embed_tokens / shared_head.head). The decoder
layer is transformers' own, with the main forward's mask and RoPE. The routed experts run
densely during training (every expert on every token, weighted by the router's top-k weights,
zero elsewhere: the same function as transformers' loop, without a host sync); the
correction bias is not trained by gradient but nudged after every step towards equal expert
loads (DeepSeek-V3's auxiliary-loss-free balancing, rate --bias-rate).

Output DIR: hf/ (config.json, model.safetensors in BF16 with the router bias in F32, the MTP
layer as model.layers.L.*, tokenizer.json, tokenizer_config.json, golden.h5 by
make_golden.golden()), loss.csv, heldout.txt (a sample of the held-out files for
`glm47 perplexity`), summary.json (corpus, config, final numbers, transformers' float32
greedy continuations and perplexity of heldout.txt, the export checks).
"""
import argparse
import csv
import hashlib
import json
import math
import os
import site
import sys
import tempfile
import time
import types

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import transformers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import Glm4MoeLiteConfig, Glm4MoeLiteForCausalLM
from transformers.models.glm4_moe_lite.modeling_glm4_moe_lite import Glm4MoeLiteRMSNorm

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "gen")]
import make_golden as mg  # noqa: E402

# the fixture tokenizer: where the GLM-4 split regex and the special tokens are read from
FIXTURES = [os.path.join(HERE, "..", "dev", "hf"), os.path.join(HERE, "..", "ours", "odd"),
            os.path.join("golden", "ours", "odd"), os.path.join("golden", "dev", "hf")]
MAX_FILE = 256 * 1024
SAMPLE_BYTES = 32 * 1024
PROMPTS = ["import os\nimport sys\n", "def f(x):\n    return x*2\n", "class Foo(object):\n    def __init__(self", None]
GREEDY_PROMPTS = ["import os\n", "def fibonacci(n):\n", "class Stack:\n    def __init__(self):\n",
                  "for i in range(10):\n"]
N_CONT = 32

SIZES = {
    "full": dict(vocab=4096, hidden_size=256, num_attention_heads=4, q_lora_rank=128, kv_lora_rank=128,
                 qk_nope_head_dim=32, qk_rope_head_dim=32, v_head_dim=64, intermediate_size=512,
                 moe_intermediate_size=96, n_routed_experts=16, num_experts_per_tok=4, n_shared_experts=1,
                 num_hidden_layers=4, ctx=512, batch=64),
    "tiny": dict(vocab=600, hidden_size=64, num_attention_heads=2, q_lora_rank=32, kv_lora_rank=32,
                 qk_nope_head_dim=16, qk_rope_head_dim=16, v_head_dim=32, intermediate_size=128,
                 moe_intermediate_size=32, n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1,
                 num_hidden_layers=2, ctx=128, batch=16),
}


def log(*a):
    print(*a, flush=True)


# ---- corpus and tokenizer -------------------------------------------------------------

def corpus(limit, max_bytes):
    """[(key, text)] for the train, validation and test parts (see the file comment)."""
    roots = [("stdlib", os.path.dirname(os.__file__))]
    for d in sorted(set(site.getsitepackages() + [site.getusersitepackages()])):
        if os.path.isdir(d):
            roots.append(("site", d))
    found = []
    for label, root in roots:
        for dp, dn, fn in os.walk(root):
            dn[:] = sorted(d for d in dn if d not in ("site-packages", "dist-packages", "__pycache__"))
            for f in fn:
                p = os.path.join(dp, f)
                if f.endswith(".py") and os.path.isfile(p) and os.path.getsize(p) <= MAX_FILE:
                    key = label + "/" + os.path.relpath(p, root)
                    found.append((hashlib.sha256(key.encode()).digest(), key, p))
    found.sort()
    parts, seen, total, skipped = ([], [], []), set(), 0, 0
    for h, key, p in found[:limit] if limit else found:
        try:
            with open(p, encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, OSError):
            skipped += 1
            continue
        digest = hashlib.sha256(text.encode()).digest()
        if not text.strip() or digest in seen:
            continue
        seen.add(digest)
        bucket = int.from_bytes(h[:4], "big") % 100
        parts[2 if bucket > 1 else bucket].append((key, text))
        total += len(text.encode())
        if total >= max_bytes:
            break
    return roots, parts, skipped


def fixture_tokenizer():
    for d in FIXTURES:
        p = os.path.join(d, "tokenizer.json")
        if os.path.exists(p):
            return d, json.load(open(p))
    sys.exit("no fixture tokenizer.json in %s" % FIXTURES)


def train_tokenizer(texts, vocab):
    fdir, fx = fixture_tokenizer()
    pattern = fx["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"]
    specials = [a["content"] for a in sorted(fx["added_tokens"], key=lambda a: a["id"])]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=vocab - len(specials), min_frequency=2, show_progress=False,
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator(texts, trainer=tr)
    n = tok.get_vocab_size()
    # GLM's layout: the special tokens follow the BPE vocabulary
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    ids = {s: tok.token_to_id(s) for s in specials}
    if [ids[s] for s in specials] != list(range(n, n + len(specials))):
        sys.exit("special tokens did not land after the vocabulary: %s" % ids)
    return tok, ids, fdir


# ---- model -----------------------------------------------------------------------------

def model_config(s, V, sp):
    L = s["num_hidden_layers"]
    c = dict(mg.COMMON)
    c.update({k: v for k, v in s.items() if k not in ("vocab", "ctx", "batch")})
    c.update(vocab_size=V, num_key_value_heads=s["num_attention_heads"],
             qk_head_dim=s["qk_nope_head_dim"] + s["qk_rope_head_dim"],
             mlp_layer_types=["dense"] + ["sparse"] * (L - 1), n_group=1, topk_group=1,
             routed_scaling_factor=1.8, norm_topk_prob=True, rms_norm_eps=1e-5,
             rope_parameters={"rope_theta": 10000.0, "rope_type": "default"},
             bos_token_id=sp["[gMASK]"], pad_token_id=sp["<|endoftext|>"],
             eos_token_id=[sp["<|endoftext|>"], sp["<|user|>"], sp["<|observation|>"]],
             max_position_embeddings=4096, transformers_version=transformers.__version__)
    return c


def hf_config(c, mtp):
    c = dict(c)
    if mtp:  # layer L as an ordinary sparse layer (make_golden.golden() does the same)
        c["num_hidden_layers"] += 1
        c["mlp_layer_types"] = c["mlp_layer_types"] + ["sparse"]
        c["num_nextn_predict_layers"] = 0
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(c, f)
        return Glm4MoeLiteConfig.from_pretrained(d)


def dense_experts(self, hidden, top_k_index, top_k_weights):
    """transformers' expert loop as one dense computation: w[n, e] is the top-k weight of
    expert e for token n, 0 when e is not chosen."""
    E, I2, H = self.gate_up_proj.shape
    w = torch.zeros(hidden.shape[0], E, device=hidden.device, dtype=top_k_weights.dtype)
    w = w.scatter(1, top_k_index, top_k_weights)
    gate, up = F.linear(hidden, self.gate_up_proj.reshape(E * I2, H)).view(-1, E, I2).chunk(2, dim=-1)
    a = self.act_fn(gate) * up * w[..., None].to(up.dtype)
    down = self.down_proj.permute(1, 0, 2).reshape(H, -1)  # [H, E * I]
    return F.linear(a.reshape(hidden.shape[0], -1), down).to(hidden.dtype)


class GlmWithMtp(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        H, eps = c["hidden_size"], c["rms_norm_eps"]
        self.lm = Glm4MoeLiteForCausalLM(hf_config(c, False))
        aux = Glm4MoeLiteForCausalLM(hf_config(c, True))
        self.mtp = aux.model.layers[c["num_hidden_layers"]]
        self.enorm = Glm4MoeLiteRMSNorm(H, eps)
        self.hnorm = Glm4MoeLiteRMSNorm(H, eps)
        self.head_norm = Glm4MoeLiteRMSNorm(H, eps)
        self.eh_proj = nn.Linear(2 * H, H, bias=False)
        self.kw = {}
        self.lm.model.layers[0].register_forward_pre_hook(lambda m, a, k: self.kw.update(k), with_kwargs=True)

    def experts(self):
        return [m for m in self.modules() if isinstance(getattr(m, "gate_up_proj", None), nn.Parameter)]

    def gates(self):
        return [m for m in self.modules() if hasattr(m, "e_score_correction_bias")]

    def forward(self, x, nxt):
        self.kw.clear()
        h = self.lm.model(input_ids=x, use_cache=False).last_hidden_state  # after model.norm
        logits = self.lm.lm_head(h)
        e = self.lm.model.embed_tokens(nxt)
        u = self.eh_proj(torch.cat([self.enorm(e), self.hnorm(h)], -1))
        kw = {k: v for k, v in self.kw.items() if k != "hidden_states"}
        kw.update(past_key_values=None, use_cache=False)
        r = mg.first(self.mtp(u, **kw))
        return logits, self.lm.lm_head(self.head_norm(r))


def init_weights(model, c, seed):
    """N(0, 0.02) everywhere, output projections scaled by 1/sqrt(2 * blocks), norms 1, the
    correction bias 0 (it is moved by load balancing, not by gradient)."""
    g = torch.Generator().manual_seed(seed)
    out_scale = 1 / math.sqrt(2 * (c["num_hidden_layers"] + 1))
    for name, p in model.named_parameters():
        if p.dim() == 1:
            nn.init.ones_(p)
            continue
        std = 0.02 * (out_scale if name.endswith(("o_proj.weight", "down_proj.weight", "down_proj")) else 1.0)
        p.data.copy_(torch.randn(p.shape, generator=g) * std)
    for gt in model.gates():
        gt.e_score_correction_bias.zero_()


def export_weights(model, c):
    """The checkpoint's names (per-expert, unfused; make_golden.make_weights' layout) from the
    trained modules; BF16, the correction bias F32."""
    L = c["num_hidden_layers"]
    sd = {}

    def block(prefix, layer):
        for k, v in layer.state_dict().items():
            if k.endswith("experts.gate_up_proj"):
                base = prefix + k[: -len("gate_up_proj")]
                Im = v.shape[1] // 2
                for e in range(v.shape[0]):
                    sd[base + "%d.gate_proj.weight" % e] = v[e, :Im]
                    sd[base + "%d.up_proj.weight" % e] = v[e, Im:]
            elif k.endswith("experts.down_proj"):
                base = prefix + k[: -len("down_proj")]
                for e in range(v.shape[0]):
                    sd[base + "%d.down_proj.weight" % e] = v[e]
            else:
                sd[prefix + k] = v

    for k, v in model.lm.state_dict().items():
        if not k.startswith("model.layers."):
            sd[k] = v
    for i, layer in enumerate(model.lm.model.layers):
        block("model.layers.%d." % i, layer)
    p = "model.layers.%d." % L
    block(p, model.mtp)
    sd[p + "embed_tokens.weight"] = model.lm.model.embed_tokens.weight
    sd[p + "enorm.weight"] = model.enorm.weight
    sd[p + "hnorm.weight"] = model.hnorm.weight
    sd[p + "eh_proj.weight"] = model.eh_proj.weight
    sd[p + "shared_head.norm.weight"] = model.head_norm.weight
    sd[p + "shared_head.head.weight"] = model.lm.lm_head.weight
    return {k: (v.detach().float().cpu().contiguous() if k.endswith("e_score_correction_bias")
                else v.detach().to(torch.bfloat16).cpu().contiguous()) for k, v in sd.items()}


# ---- training --------------------------------------------------------------------------

def windows(data, starts, T):
    idx = starts[:, None] + torch.arange(T + 2, device=data.device)[None]
    w = data[idx]
    return w[:, :T], w[:, 1:T + 1], w[:, 2:T + 2]


@torch.no_grad()
def evaluate(model, held, T, B, max_windows=10 ** 9):
    """Mean held-out losses over non-overlapping windows; 'accept' is how often the MTP argmax
    at p equals the main argmax at p + 1 (the greedy draft acceptance, teacher-forced)."""
    model.eval()
    n = min((len(held) - 2) // T, max_windows)
    if n <= 0:
        return float("nan"), float("nan"), float("nan")
    tot = tot2 = acc = cnt = 0.0
    for b0 in range(0, n, B):
        starts = torch.arange(b0, min(n, b0 + B), device=held.device) * T
        x, y1, y2 = windows(held, starts, T)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            lg, mlg = model(x, y1)
        tot += F.cross_entropy(lg.float().flatten(0, 1), y1.flatten(), reduction="sum").item()
        tot2 += F.cross_entropy(mlg.float().flatten(0, 1), y2.flatten(), reduction="sum").item()
        acc += (mlg[:, :-1].argmax(-1) == lg[:, 1:].argmax(-1)).float().sum().item()
        cnt += x.numel()
    model.train()
    return tot / cnt, tot2 / cnt, acc / (cnt - n)


def train(model, data, held, s, a, seconds, csv_path):
    dev = data.device
    T, B = s["ctx"], s["batch"]
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    other = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)
    gates = model.gates()
    E = model.c["n_routed_experts"]
    loads = []
    for g in gates:
        g.register_forward_hook(lambda m, i, o: loads.append(o[2]) if m.training else None)
    gen = torch.Generator(device=dev).manual_seed(a.seed)
    f = open(csv_path, "w", newline="")
    w = csv.writer(f)
    w.writerow(["step", "seconds", "tokens", "lr", "train_loss", "train_mtp_loss", "valid_loss",
                "valid_mtp_loss", "valid_ppl", "mtp_accept", "max_expert_load"])
    t0 = time.time()
    step, next_eval, run, run2, nrun, maxload = 0, 0.0, 0.0, 0.0, 0, 0.0
    best = (float("inf"), 0, None)
    while True:
        el = time.time() - t0
        done = el >= seconds
        if el >= next_eval or done:
            hl, hl2, acc = evaluate(model, held, T, B, max_windows=512)
            if hl < best[0]:
                best = (hl, step, {k: v.detach().clone() for k, v in model.state_dict().items()})
            row = [step, round(el, 1), step * B * T, "%.3g" % opt.param_groups[0]["lr"],
                   "%.4f" % (run / nrun) if nrun else "", "%.4f" % (run2 / nrun) if nrun else "",
                   "%.4f" % hl, "%.4f" % hl2, "%.3f" % math.exp(hl), "%.4f" % acc, "%.3f" % maxload]
            w.writerow(row)
            f.flush()
            log("step %6d %6.1fs %5.1f steps/s lr %s train %s mtp %s | valid %.4f (ppl %.2f) mtp %.4f accept %.3f | "
                "max expert load x%.2f" % (step, el, step / max(el, 1e-9), row[3], row[4], row[5], hl, math.exp(hl), hl2, acc, maxload))
            run = run2 = nrun = 0
            next_eval += a.eval_every
            if done:
                break
        frac = el / seconds
        lr = a.lr * min(1.0, (step + 1) / a.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for gr in opt.param_groups:
            gr["lr"] = lr
        starts = torch.randint(0, len(data) - T - 2, (B,), device=dev, generator=gen)
        x, y1, y2 = windows(data, starts, T)
        loads.clear()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            lg, mlg = model(x, y1)
            l1 = F.cross_entropy(lg.float().flatten(0, 1), y1.flatten())
            l2 = F.cross_entropy(mlg.float().flatten(0, 1), y2.flatten())
            loss = l1 + a.mtp_weight * l2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():  # auxiliary-loss-free balancing of the routed experts
            for g, idx in zip(gates, loads):
                cnt = torch.bincount(idx.flatten(), minlength=E).float()
                g.e_score_correction_bias.add_(a.bias_rate * torch.sign(cnt.mean() - cnt))
            if step % 50 == 0:
                maxload = max(float(torch.bincount(idx.flatten(), minlength=E).max()) * E / idx.numel()
                              for idx in loads)
        run += l1.item() if step % 10 == 0 else 0.0
        run2 += l2.item() if step % 10 == 0 else 0.0
        nrun += 1 if step % 10 == 0 else 0
        step += 1
    f.close()
    if best[2] is not None and best[0] < hl:
        model.load_state_dict(best[2])
        log("kept the checkpoint of step %d (validation loss %.4f < final %.4f)" % (best[1], best[0], hl))
        return step, best[1]
    return step, step


# ---- checks after export ---------------------------------------------------------------

@torch.no_grad()
def hf_greedy(model, ids, eos, n):
    seq, out, gap = list(ids), [], 1e9
    for _ in range(n):
        lg = model(torch.tensor([seq]), use_cache=False).logits[0, -1].float()
        lg[eos] = -float("inf")
        top = torch.topk(lg, 2)
        gap = min(gap, float(top.values[0] - top.values[1]))
        seq.append(int(top.indices[0]))
        out.append(seq[-1])
    return out, gap


@torch.no_grad()
def hf_perplexity(model, ids, T):
    """glm47 perplexity's definition: non-overlapping windows of T tokens, each scoring its
    tokens 1..w-1, exp of the mean negative log-likelihood (float64 sums)."""
    nll, n = 0.0, 0
    for i in range(0, len(ids) - 1, T):
        w = ids[i:i + T]
        if len(w) < 2:
            break
        lg = model(torch.tensor([w]), use_cache=False).logits[0].double()
        nll += float(F.cross_entropy(lg[:-1], torch.tensor(w[1:]), reduction="sum"))
        n += len(w) - 1
    return math.exp(nll / n), n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tiny", action="store_true", help="small sizes and corpus: a quick check of the pipeline")
    ap.add_argument("--minutes", type=float, default=6.5, help="training time box")
    ap.add_argument("--total", type=float, default=560, help="the whole script's time box, seconds")
    ap.add_argument("--reserve", type=float, default=90, help="seconds kept for export and checks")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--mtp-weight", type=float, default=0.3)
    ap.add_argument("--bias-rate", type=float, default=1e-3)
    ap.add_argument("--eval-every", type=float, default=20.0, help="seconds")
    ap.add_argument("--seed", type=int, default=4747)
    ap.add_argument("--max-bytes", type=float, default=200e6, help="corpus size cap")
    ap.add_argument("--tok-every", type=int, default=4, help="the tokenizer learns from every N-th train file")
    a = ap.parse_args()
    start = time.time()
    torch.manual_seed(a.seed)
    torch.set_num_threads(min(16, os.cpu_count() or 1))
    s = SIZES["tiny" if a.tiny else "full"]
    log("torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.cuda.get_device_name(0))
    os.makedirs(a.out, exist_ok=True)
    hf = os.path.join(a.out, "hf")
    os.makedirs(hf, exist_ok=True)

    roots, (va, te, tr), skipped = corpus(400 if a.tiny else 0, a.max_bytes)
    size = lambda fs: sum(len(t.encode()) for _, t in fs)  # noqa: E731
    src = lambda fs: "%d stdlib" % sum(k.startswith("stdlib/") for k, _ in fs)  # noqa: E731
    log("corpus %s: train %d files (%s, %d bytes), valid %d (%s, %d bytes), test %d (%s, %d bytes), %d not UTF-8" % (
        roots, len(tr), src(tr), size(tr), len(va), src(va), size(va), len(te), src(te), size(te), skipped))
    tok, sp, fdir = train_tokenizer([t for _, t in tr[::a.tok_every]], s["vocab"])
    V = tok.get_vocab_size()
    tok.save(os.path.join(hf, "tokenizer.json"))
    with open(os.path.join(fdir, "tokenizer_config.json")) as f:
        tcfg = json.load(f)
    with open(os.path.join(hf, "tokenizer_config.json"), "w") as f:
        json.dump(tcfg, f)
    eot = sp["<|endoftext|>"]

    def stream(files):
        out = [np.array([eot] + e.ids, dtype=np.int64)
               for e in tok.encode_batch([t for _, t in files], add_special_tokens=False)]
        return torch.from_numpy(np.concatenate(out))

    data, valid, test = stream(tr), stream(va), stream(te)
    log("tokenizer: vocab %d (%d BPE + %d special), %.2f bytes/token; tokens: train %d, valid %d, test %d (%.0f s)" % (
        V, V - len(sp), len(sp), size(tr) / len(data), len(data), len(valid), len(test), time.time() - start))
    # the perplexity sample: whole test files in hash order up to SAMPLE_BYTES
    sample, used = "", []
    for key, t in te:
        if len((sample + t).encode()) <= SAMPLE_BYTES:
            sample += t
            used.append(key)
    with open(os.path.join(a.out, "heldout.txt"), "w", encoding="utf-8") as f:
        f.write(sample)

    c = model_config(s, V, sp)
    dev = torch.device("cuda")
    model = GlmWithMtp(c)
    for m in model.experts():
        m.forward = types.MethodType(dense_experts, m)
    init_weights(model, c, a.seed)
    model.to(dev).train()
    n_params = sum(p.numel() for p in model.parameters())
    log("model: %d parameters in training (embedding and head shared with the MTP block), %d exported; attention %s" % (
        n_params, n_params + 2 * V * c["hidden_size"], getattr(model.lm.config, "_attn_implementation", "?")))
    seconds = min(a.minutes * 60, a.total - a.reserve - (time.time() - start))
    steps, kept = train(model, data.to(dev), valid.to(dev), s, a, seconds, os.path.join(a.out, "loss.csv"))
    # round to what is exported, so every number below is the exported model's
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    final = {}
    for name, part in (("valid", valid), ("test", test)):
        hl, hl2, acc = evaluate(model, part.to(dev), s["ctx"], s["batch"])
        final[name] = {"loss": hl, "ppl": math.exp(hl), "mtp_loss": hl2, "mtp_accept_tf": acc}
        log("final (BF16 weights) %s: loss %.4f ppl %.3f, mtp loss %.4f, teacher-forced mtp accept %.3f" % (
            name, hl, math.exp(hl), hl2, acc))
    biases = [g.e_score_correction_bias.detach().cpu().tolist() for g in model.gates()]

    weights = export_weights(model, c)
    mg.write_model_dir(hf, c, weights, hf)
    # transformers reads the exported directory back: the same logits as the training modules
    ref, _ = mg.load(hf)
    model.float().cpu().eval()
    x = test[:129].tolist()
    with torch.no_grad():
        lg_train, mlg_train = model(torch.tensor([x[:128]]), torch.tensor([x[1:129]]))
        lg_hf = ref(torch.tensor([x[:128]]), use_cache=False).logits
    d_main = float((lg_train - lg_hf).abs().max())
    log("export check: max |logits(training modules) - logits(transformers from the file)| = %.3g" % d_main)
    if not d_main < 1e-3:
        sys.exit("export check failed")
    # golden.h5 (make_golden's machinery); its MTP rows must equal the training MTP forward
    res = mg.golden(hf, c, weights, "default", a.seed, hf, PROMPTS)
    d_mtp = 0.0
    for ids, t in res:
        with torch.no_grad():
            lg_t, mlg_t = model(torch.tensor([ids]), torch.tensor([t["mtp/next_tokens"].tolist()]))
        d_mtp = max(d_mtp, float(np.abs(mlg_t[0].numpy() - t["mtp/logits"]).max()),
                    float(np.abs(lg_t[0].numpy() - t["logits"]).max()))
    log("golden check: max |training forward - golden.h5| over logits and mtp/logits = %.3g" % d_mtp)
    if not d_mtp < 1e-3:
        sys.exit("golden check failed")

    eos = c["eos_token_id"]
    greedy = []
    for p in GREEDY_PROMPTS:
        ids = tok.encode(p, add_special_tokens=False).ids
        g, gap = hf_greedy(ref, ids, eos, N_CONT)
        greedy.append({"prompt": p, "prompt_ids": ids, "greedy": g, "min_top2_gap": gap, "text": tok.decode(g)})
        log("greedy %r -> %r (min top-2 gap %.3g)" % (p, tok.decode(g), gap))
    sids = tok.encode(sample, add_special_tokens=False).ids
    ppl, scored = hf_perplexity(ref, sids, s["ctx"])
    log("transformers float32 perplexity of heldout.txt (%d bytes, %d tokens scored, windows of %d): %.4f" % (
        len(sample.encode()), scored, s["ctx"], ppl))
    summary = {
        "corpus": {"roots": roots, "python": sys.version, "files": [len(tr), len(va), len(te)],
                   "stdlib_files": [src(tr), src(va), src(te)], "bytes": [size(tr), size(va), size(te)],
                   "tokens": [len(data), len(valid), len(test)], "not_utf8": skipped,
                   "split": "sha256(key)[:4] big-endian % 100: 0 valid, 1 test, else train",
                   "heldout_sample_files": used, "heldout_sample_bytes": len(sample.encode())},
        "config": c, "args": vars(a), "params_exported": sum(v.numel() for v in weights.values()),
        "train_seconds": seconds, "steps": steps, "kept_step": kept,
        "tokens_seen": kept * s["batch"] * s["ctx"],
        "final": final,
        "checks": {"export_max_abs_logit_diff": d_main, "golden_max_abs_diff": d_mtp},
        "hf_float32_sample_ppl": ppl, "hf_float32_sample_tokens_scored": scored, "greedy": greedy,
        "router_bias": biases, "torch": torch.__version__, "transformers": transformers.__version__,
        "seconds_total": time.time() - start,
    }
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    log("done in %.0f s" % (time.time() - start))


if __name__ == "__main__":
    main()
