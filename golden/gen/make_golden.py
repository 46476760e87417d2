#!/usr/bin/env python3
"""Make golden/ours/<name>/: a tiny Glm4MoeLite model with seeded random weights (BF16
safetensors, the router correction bias in F32 as in real checkpoints, plus one MTP layer)
and golden.h5, every tensor of the ARCHITECTURE.md dump schema as Hugging Face transformers
computes it (float32, eager attention, forward hooks), per golden/dev/FIXTURES.md semantics.

Runs where torch, transformers (5.17.0), safetensors, h5py and tokenizers exist (the GPU
host; no GPU is needed). golden/README.md gives the exact command.

    python3 golden/gen/make_golden.py --out DIR [--configs odd,wide] [--print-source]

MTP (HF never runs it): rows j = 0..T-1 pair final_norm[j] with token j+1 (the last row
with greedy[0]) at position j, causal over the rows:
    u = eh_proj(cat[enorm(embed_L(t)), hnorm(h)]); r = DecoderLayer_L(u); logits = head(norm(r))
The decoder block is HF's own Glm4MoeLiteDecoderLayer, loaded by from_pretrained from the
same safetensors with a config that makes layer L an ordinary (sparse) layer.
"""
import argparse
import copy
import inspect
import json
import os
import shutil
import sys
import tempfile

import h5py
import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers import Glm4MoeLiteForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
# the fixture tokenizer (vocab 512); golden/ours/odd keeps an identical copy, used when
# golden/dev is not at hand
TOKDIRS = [os.path.join(HERE, "..", "dev", "hf"), os.path.join(HERE, "..", "ours", "odd")]
TOKDIR = next((d for d in TOKDIRS if os.path.exists(os.path.join(d, "tokenizer.json"))), TOKDIRS[0])
TOKFILES = ["tokenizer.json", "tokenizer_config.json"]

N_GREEDY = 24
# short, so each golden.h5 stays ~1.5 MB; the 24 greedy decode steps reach position ~45
PROMPTS = [
    "The quick brown fox.",
    "def f(x):\n    return x*2\n",
    "Hello, world! 42",
    None,  # N_RANDOM random ids
]
N_RANDOM = 19

COMMON = {
    "architectures": ["Glm4MoeLiteForCausalLM"],
    "model_type": "glm4_moe_lite",
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 494,
    "eos_token_id": [492, 499, 501],
    "pad_token_id": 492,
    "dtype": "bfloat16",
    "hidden_act": "silu",
    "initializer_range": 0.02,
    "max_position_embeddings": 4096,
    "pretraining_tp": 1,
    "rope_interleave": True,
    "tie_word_embeddings": False,
    "use_cache": True,
    "vocab_size": 512,
    "num_nextn_predict_layers": 1,
}

# (A) odd sizes, group-limited routing; (B) n_group 1, two dense layers, no top-k norm.
CONFIGS = {
    "odd": dict(
        hidden_size=160, num_attention_heads=3, num_key_value_heads=3, q_lora_rank=90, kv_lora_rank=74,
        qk_nope_head_dim=26, qk_rope_head_dim=14, qk_head_dim=40, v_head_dim=34, intermediate_size=222,
        moe_intermediate_size=38, n_routed_experts=8, num_experts_per_tok=3, n_group=4, topk_group=2,
        n_shared_experts=1, num_hidden_layers=3, mlp_layer_types=["dense", "sparse", "sparse"],
        routed_scaling_factor=2.5, norm_topk_prob=True, rms_norm_eps=1e-5,
        rope_parameters={"rope_theta": 10000.0, "rope_type": "default"}),
    "wide": dict(
        hidden_size=128, num_attention_heads=4, num_key_value_heads=4, q_lora_rank=64, kv_lora_rank=64,
        qk_nope_head_dim=32, qk_rope_head_dim=64, qk_head_dim=96, v_head_dim=32, intermediate_size=192,
        moe_intermediate_size=32, n_routed_experts=12, num_experts_per_tok=4, n_group=1, topk_group=1,
        n_shared_experts=2, num_hidden_layers=4, mlp_layer_types=["dense", "dense", "sparse", "sparse"],
        routed_scaling_factor=0.7, norm_topk_prob=False, rms_norm_eps=1e-6,
        rope_parameters={"rope_theta": 500000.0, "rope_type": "default"}),
}
SEEDS = {"odd": 1001, "wide": 2002}


def make_weights(c, seed):
    """HF checkpoint names (per-expert, unfused), float32 values; linears N(0, 1/in) so every
    activation stays O(1); norms near 1; the router bias random and non-zero."""
    g = torch.Generator().manual_seed(seed)
    H, V, nh = c["hidden_size"], c["vocab_size"], c["num_attention_heads"]
    dn, dr, dv = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
    E, Im = c["n_routed_experts"], c["moe_intermediate_size"]
    w = {}

    def lin(name, out, inp, gain=1.0):
        w[name] = torch.randn(out, inp, generator=g) * (gain / inp ** 0.5)

    def norm(name, n):
        w[name] = 0.8 + 0.4 * torch.rand(n, generator=g)

    def block(p, sparse):
        norm(p + "input_layernorm.weight", H)
        norm(p + "post_attention_layernorm.weight", H)
        a = p + "self_attn."
        lin(a + "q_a_proj.weight", c["q_lora_rank"], H)
        norm(a + "q_a_layernorm.weight", c["q_lora_rank"])
        lin(a + "q_b_proj.weight", nh * (dn + dr), c["q_lora_rank"], 2.0)
        lin(a + "kv_a_proj_with_mqa.weight", c["kv_lora_rank"] + dr, H)
        norm(a + "kv_a_layernorm.weight", c["kv_lora_rank"])
        lin(a + "kv_b_proj.weight", nh * (dn + dv), c["kv_lora_rank"])
        lin(a + "o_proj.weight", H, nh * dv)
        m = p + "mlp."
        if not sparse:
            I = c["intermediate_size"]
            lin(m + "gate_proj.weight", I, H), lin(m + "up_proj.weight", I, H), lin(m + "down_proj.weight", H, I)
            return
        lin(m + "gate.weight", E, H, 1.5)
        # both signs, |b| >= 0.01; transformers 5.17 drops masked groups to -inf like
        # model-spec §3.2 (older DeepSeek-V3 code filled 0.0, which differs for negative scores)
        b = torch.rand(E, generator=g) * 0.4 - 0.2
        w[m + "gate.e_score_correction_bias"] = torch.where(b.abs() < 0.01, b.sign() * 0.01 + b, b)
        for e in range(E):
            q = m + "experts.%d." % e
            lin(q + "gate_proj.weight", Im, H), lin(q + "up_proj.weight", Im, H), lin(q + "down_proj.weight", H, Im)
        Is = Im * c["n_shared_experts"]
        q = m + "shared_experts."
        lin(q + "gate_proj.weight", Is, H), lin(q + "up_proj.weight", Is, H), lin(q + "down_proj.weight", H, Is)

    w["model.embed_tokens.weight"] = torch.randn(V, H, generator=g)
    for i, t in enumerate(c["mlp_layer_types"]):
        block("model.layers.%d." % i, t == "sparse")
    norm("model.norm.weight", H)
    lin("lm_head.weight", V, H, 2.0)
    L = c["num_hidden_layers"]
    p = "model.layers.%d." % L
    block(p, True)
    w[p + "embed_tokens.weight"] = torch.randn(V, H, generator=g)
    norm(p + "enorm.weight", H)
    norm(p + "hnorm.weight", H)
    lin(p + "eh_proj.weight", H, 2 * H)
    norm(p + "shared_head.norm.weight", H)
    lin(p + "shared_head.head.weight", V, H, 2.0)
    # stored as the checkpoint stores them: BF16, the correction bias F32
    return {k: (v.contiguous() if k.endswith("e_score_correction_bias") else v.to(torch.bfloat16).contiguous())
            for k, v in w.items()}


def write_model_dir(d, c, weights, tokdir=TOKDIR):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
        f.write("\n")
    save_file(weights, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    for t in TOKFILES:
        if os.path.abspath(os.path.join(tokdir, t)) != os.path.abspath(os.path.join(d, t)):
            shutil.copyfile(os.path.join(tokdir, t), os.path.join(d, t))


def load(d):
    # eager attention and the plain per-expert loop (the default grouped_mm needs 16-byte
    # strides, which the odd sizes do not have)
    model, info = Glm4MoeLiteForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager",
                                                          experts_implementation="eager", output_loading_info=True)
    if info.get("missing_keys") or info.get("mismatched_keys"):
        sys.exit("%s: missing %s mismatched %s" % (d, info.get("missing_keys"), info.get("mismatched_keys")))
    model.eval()
    return model, info


def first(x):
    return x[0] if isinstance(x, tuple) else x


class Recorder:
    """Forward hooks that collect the ARCHITECTURE.md names for one decoder layer."""

    def __init__(self):
        self.t = {}
        self.handles = []
        self.wrapped = []

    def put(self, name, x):
        self.t[name] = x.detach().reshape(-1, x.shape[-1]).float().cpu().numpy()

    def hook(self, mod, name):
        self.handles.append(mod.register_forward_hook(lambda m, i, o: self.put(name, first(o))))

    def layer(self, layer, prefix, E):
        at = layer.self_attn
        self.hook(layer.input_layernorm, prefix + "attn_norm")
        self.hook(at.q_a_layernorm, prefix + "q_a")
        self.hook(at.kv_a_layernorm, prefix + "kv_latent")
        self.hook(at.o_proj, prefix + "attn_out")
        self.hook(layer.post_attention_layernorm, prefix + "ffn_norm")
        self.hook(layer.mlp, prefix + "ffn_out")
        self.hook(layer, prefix + "out")
        mlp = layer.mlp
        if not hasattr(mlp, "gate"):
            return

        def gate_hook(m, i, o):
            o = first(o)
            if o.shape[-1] != E:
                sys.exit("%s: router output has shape %s" % (prefix, tuple(o.shape)))
            self.put(prefix + "router_logits", o)
        self.handles.append(mlp.gate.register_forward_hook(gate_hook))
        def keep(ids, wts):
            ids, wts = ids.detach().cpu().numpy(), wts.detach().float().cpu().numpy()
            order = np.argsort(ids, axis=-1, kind="stable")
            self.t[prefix + "topk_ids"] = np.take_along_axis(ids, order, -1).astype(np.int32)
            self.t[prefix + "topk_weights"] = np.take_along_axis(wts, order, -1).astype(np.float32)
        if not hasattr(mlp, "route_tokens_to_experts"):
            # other layouts: the experts module receives (hidden, top_k_index, top_k_weights)
            self.handles.append(mlp.experts.register_forward_pre_hook(lambda m, a: keep(a[1], a[2])))
            return
        orig = mlp.route_tokens_to_experts

        def route(*a, **k):
            r = orig(*a, **k)
            keep(r[0], r[1])
            return r
        mlp.route_tokens_to_experts = route
        self.wrapped.append(mlp)

    def clear(self):
        for h in self.handles:
            h.remove()
        for mlp in self.wrapped:
            del mlp.route_tokens_to_experts  # the class method again
        self.handles, self.wrapped = [], []


def greedy(model, ids, eos):
    """N_GREEDY tokens, argmax over float32 logits with the end-of-generation ids at -inf
    (FIXTURES.md: generation never stops early). Returns tokens and the smallest top-2 gap."""
    seq, out, gap = list(ids), [], 1e9
    with torch.no_grad():
        for _ in range(N_GREEDY):
            lg = model(torch.tensor([seq]), use_cache=False).logits[0, -1].float()
            lg[eos] = -float("inf")
            top = torch.topk(lg, 2)
            gap = min(gap, float(top.values[0] - top.values[1]))
            t = int(top.indices[0])
            out.append(t)
            seq.append(t)
    return out, gap


def rms(x, w, eps):
    x = x.float()
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def run_prompt(model, mtp_layer, mtp_w, c, tokens, eos, rotary):
    L, E = c["num_hidden_layers"], c["n_routed_experts"]
    rec = Recorder()
    for i, layer in enumerate(model.model.layers):
        rec.layer(layer, "layer.%02d/" % i, E)
    rec.hook(model.model.norm, "final_norm")
    captured = {}

    def pre(m, a, k):
        captured.update(k)
    hpre = model.model.layers[0].register_forward_pre_hook(pre, with_kwargs=True)
    with torch.no_grad():
        logits = model(torch.tensor([tokens]), use_cache=False).logits[0].float()
    hpre.remove()
    rec.clear()
    t = rec.t
    t["logits"] = logits.cpu().numpy()
    g, gap = greedy(model, tokens, eos)
    t["greedy"] = np.array(g, dtype=np.int32)
    # MTP rows (FIXTURES.md), HF's decoder layer with the main forward's own mask and RoPE
    eps = c["rms_norm_eps"]
    nxt = list(tokens[1:]) + [g[0]]
    p = "model.layers.%d." % L
    with torch.no_grad():
        e = mtp_w[p + "embed_tokens.weight"][torch.tensor(nxt)]
        h = torch.from_numpy(t["final_norm"])
        cat = torch.cat([rms(e, mtp_w[p + "enorm.weight"], eps), rms(h, mtp_w[p + "hnorm.weight"], eps)], -1)
        u = cat @ mtp_w[p + "eh_proj.weight"].T
        mrec = Recorder()
        mrec.layer(mtp_layer, "mtp/", E)
        kw = dict(captured)
        T = len(tokens)
        if kw.get("attention_mask") is None:
            kw["attention_mask"] = torch.full((T, T), float("-inf")).triu(1)[None, None]
        if kw.get("position_embeddings") is None:
            kw["position_ids"] = torch.arange(T)[None]
            kw["position_embeddings"] = rotary(u[None], kw["position_ids"])
        am = kw["attention_mask"]
        if not getattr(run_prompt, "said", False):
            print("  decoder-layer keywords %s; mask %s %s (%s)" % (sorted(captured), tuple(am.shape), am.dtype,
                  "HF's" if captured.get("attention_mask") is not None else "built here"))
            run_prompt.said = True
        kw["past_key_values"] = None
        kw["use_cache"] = False
        kw.pop("hidden_states", None)
        r = first(mtp_layer(u[None], **kw))[0]
        mrec.clear()
        mlg = rms(r, mtp_w[p + "shared_head.norm.weight"], eps) @ mtp_w[p + "shared_head.head.weight"].T
    for k, v in mrec.t.items():
        if k != "mtp/out":
            t[k] = v
    t["mtp/next_tokens"] = np.array(nxt, dtype=np.int32)
    t["mtp/eh_out"] = u.numpy()
    t["mtp/out"] = r.numpy()
    t["mtp/logits"] = mlg.numpy()
    raw_argmax = int(torch.argmax(logits[-1]))
    return t, gap, raw_argmax


def route_margin(t, c, bias, prefix):
    """Smallest gap, over rows, between the last kept and first dropped group score and
    between the k-th and (k+1)-th selection score among kept experts: shows that no near-tie
    decided a choice (recomputed in float64 from the dumped router logits)."""
    z = t[prefix + "router_logits"].astype(np.float64)
    sel = 1 / (1 + np.exp(-z)) + bias
    E, G, TG, k = c["n_routed_experts"], c["n_group"], c["topk_group"], c["num_experts_per_tok"]
    gg, eg, differ, limited = 1e9, 1e9, 0, 0
    for r, row in enumerate(sel):
        keep = np.ones(E, bool)
        if G > 1:
            gs = np.sort(row.reshape(G, -1), -1)[:, -2:].sum(-1)
            o = np.sort(gs)[::-1]
            gg = min(gg, o[TG - 1] - o[TG])
            keep = np.repeat(np.isin(np.arange(G), np.argsort(-gs)[:TG]), E // G)
        o = np.sort(row[keep])[::-1]
        eg = min(eg, o[k - 1] - o[k])
        mine = np.sort(np.argsort(-np.where(keep, row, -np.inf))[:k])
        differ += int(not np.array_equal(mine, t[prefix + "topk_ids"][r]))
        limited += int(not np.array_equal(mine, np.sort(np.argsort(-row)[:k])))
    return gg, eg, differ, limited


def make(name, outdir, print_source):
    c = dict(COMMON)
    c.update(CONFIGS[name])
    c["transformers_version"] = transformers.__version__
    d = os.path.join(outdir, name)
    weights = make_weights(c, SEEDS[name])
    write_model_dir(d, c, weights)
    golden(d, c, weights, name, SEEDS[name], TOKDIR, PROMPTS, print_source)


def golden(d, c, weights, name, seed, tokdir, prompts, print_source=False):
    """Write d/golden.h5 for the model directory d (config c, checkpoint-named weights);
    prompts are texts for tokdir's tokenizer or None (N_RANDOM seeded random ids).
    Returns [(ids, tensors)] per prompt."""
    model, info = load(d)
    unexpected = info.get("unexpected_keys") or []
    L = c["num_hidden_layers"]
    bad = [k for k in unexpected if not k.startswith("model.layers.%d." % L)]
    if bad:
        sys.exit("%s: unexpected keys outside the MTP layer: %s" % (name, bad[:5]))
    if print_source and name == "odd":
        mlp = model.model.layers[1].mlp
        print(inspect.getsource(type(mlp)))
        print(inspect.getsource(type(mlp.gate)))
        print(inspect.getsource(type(model.model.layers[1])))
        print({k: tuple(v.shape) for k, v in mlp.named_parameters()})
    # the MTP block: the same file with layer L made an ordinary sparse layer
    with tempfile.TemporaryDirectory() as tmp:
        c2 = copy.deepcopy(c)
        c2["num_hidden_layers"] = L + 1
        c2["mlp_layer_types"] = c["mlp_layer_types"] + ["sparse"]
        c2["num_nextn_predict_layers"] = 0
        write_model_dir(tmp, c2, weights, tokdir)
        mtp_model, _ = load(tmp)
    mtp_layer = mtp_model.model.layers[L]
    mtp_w = {k: v.float() for k, v in weights.items() if k.startswith("model.layers.%d." % L)}
    tok = Tokenizer.from_file(os.path.join(tokdir, "tokenizer.json"))
    rng = np.random.default_rng(seed)
    eos = c["eos_token_id"]
    results = []
    with h5py.File(os.path.join(d, "golden.h5"), "w") as f:
        f.attrs["config"] = name
        f.attrs["seed"] = seed
        f.attrs["transformers"] = str(transformers.__version__)
        f.attrs["torch"] = str(torch.__version__)
        for i, text in enumerate(prompts):
            if text is None:
                ids = [int(x) for x in rng.integers(0, c["vocab_size"], N_RANDOM)]
            else:
                ids = tok.encode(text, add_special_tokens=False).ids
            t, gap, raw = run_prompt(model, mtp_layer, mtp_w, c, ids, eos, mtp_model.model.rotary_emb)
            results.append((ids, t))
            grp = f.create_group("prompt%d" % i)
            if text is not None:
                grp.attrs["utf8"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
            grp.create_dataset("tokens", data=np.array(ids, dtype=np.int32))
            for k, v in t.items():
                grp.create_dataset(k, data=v)
            note = "" if raw == t["greedy"][0] else " (unmasked argmax %d is an end-of-generation id)" % raw
            moe = [k[:-len("topk_ids")] for k in t if k.endswith("topk_ids")]
            sparse = ["layer.%02d/" % j for j, x in enumerate(c["mlp_layer_types"]) if x == "sparse"] + ["mtp/"]
            if sorted(moe) != sorted(sparse):
                sys.exit("%s: top-k recorded for %s, expected %s" % (name, moe, sparse))
            for q in moe:
                lp = "model.layers.%d.mlp.gate.e_score_correction_bias" % (L if q == "mtp/" else int(q[6:8]))
                gg, eg, differ, limited = route_margin(t, c, weights[lp].double().numpy(), q)
                print("  %s route margins: group %.3g expert %.3g; rows where HF differs from "
                      "model-spec 3.2: %d; rows the group limit changed: %d" % (q, gg, eg, differ, limited))
            print("%s prompt%d: T=%d greedy %s min top-2 gap %.3g%s; topk %s" %
                  (name, i, len(ids), t["greedy"][:8].tolist(), gap, note,
                   {k: t[k + "topk_ids"][0].tolist() for k in moe}))
            if raw != t["greedy"][0]:
                print("WARNING: engine dump pairs the last MTP row with the unmasked argmax")
    print("%s: %s" % (name, {f: os.path.getsize(os.path.join(d, f)) for f in sorted(os.listdir(d))}))
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--configs", default="odd,wide")
    ap.add_argument("--print-source", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(0)
    print("torch", torch.__version__, "transformers", transformers.__version__, "h5py", h5py.__version__)
    for name in a.configs.split(","):
        make(name, a.out, a.print_source)


if __name__ == "__main__":
    main()
