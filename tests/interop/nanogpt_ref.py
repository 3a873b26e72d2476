"""nanoGPT's GPT (model.py) in PyTorch, the independent side of lmrun's nanoGPT interchange tests.

The module tree and state-dict names are nanoGPT's: transformer.{wte,wpe,h.N.{ln_1,attn.{c_attn,
c_proj},ln_2,mlp.{c_fc,c_proj}},ln_f} and lm_head tied to wte; LayerNorm with an optional bias,
exact GELU, causal attention scaled by 1/sqrt(head size). Written for these tests from nanoGPT's
architecture, run by Debian's python3-torch.

  python3 nanogpt_ref.py forward CKPT TOKENS   logits of the token list (JSON) -> stdout, JSON
  python3 nanogpt_ref.py write CKPT TOKENS     a fresh model, one AdamW step, saved as nanoGPT's
                                               train.py saves its checkpoints; its logits -> stdout
"""
import json
import math
import pickletools
import sys
import zipfile
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F


# Globals a state-dict checkpoint may name under torch.load(weights_only=True).
SAFE_GLOBALS = {
    "collections OrderedDict",
    "torch._utils _rebuild_tensor_v2",
    "torch FloatStorage",
    "torch LongStorage",
}


class LayerNorm(nn.Module):
    def __init__(self, n, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.bias = nn.Parameter(torch.zeros(n)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class Attention(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.n_head = a["n_head"]
        self.c_attn = nn.Linear(a["n_embd"], 3 * a["n_embd"], bias=a["bias"])
        self.c_proj = nn.Linear(a["n_embd"], a["n_embd"], bias=a["bias"])

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class Mlp(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.c_fc = nn.Linear(a["n_embd"], 4 * a["n_embd"], bias=a["bias"])
        self.c_proj = nn.Linear(4 * a["n_embd"], a["n_embd"], bias=a["bias"])

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.ln_1 = LayerNorm(a["n_embd"], a["bias"])
        self.attn = Attention(a)
        self.ln_2 = LayerNorm(a["n_embd"], a["bias"])
        self.mlp = Mlp(a)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(a["vocab_size"], a["n_embd"]),
            wpe=nn.Embedding(a["block_size"], a["n_embd"]),
            h=nn.ModuleList([Block(a) for _ in range(a["n_layer"])]),
            ln_f=LayerNorm(a["n_embd"], a["bias"]),
        ))
        self.lm_head = nn.Linear(a["n_embd"], a["vocab_size"], bias=False)
        self.transformer.wte.weight = self.lm_head.weight

    def forward(self, idx):
        t = self.transformer
        x = t.wte(idx) + t.wpe(torch.arange(idx.size(1)))
        for block in t.h:
            x = block(x)
        return self.lm_head(t.ln_f(x))


def logits_json(model, tokens):
    model.eval()
    with torch.no_grad():
        out = model(torch.tensor([tokens], dtype=torch.long))
    return json.dumps(out[0].double().tolist())


def main():
    mode, path, tokens = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    if mode == "forward":
        # What torch.load(weights_only=True) allows in recent PyTorch: no other globals (Debian's
        # 1.13 cannot check it itself: its weights-only unpickler lacks BINFLOAT).
        with zipfile.ZipFile(path) as archive:
            pickle_name = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
            for opcode, arg, _ in pickletools.genops(archive.read(pickle_name)):
                if opcode.name in ("GLOBAL", "STACK_GLOBAL", "INST") and arg not in SAFE_GLOBALS:
                    sys.exit(f"{path}: global {arg!r} is not one weights_only loading allows")
        checkpoint = torch.load(path, map_location="cpu")
        model = GPT(checkpoint["model_args"])
        state = checkpoint["model"]
        model.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in state.items()})
        print(logits_json(model, tokens))
    elif mode == "write":
        torch.manual_seed(7)
        args = dict(n_layer=2, n_head=2, n_embd=32, block_size=16, bias=True, vocab_size=65,
                    dropout=0.0)
        model = GPT(args)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
        loss = model(torch.randint(0, 65, (2, 8))).logsumexp(-1).mean()
        loss.backward()
        optimizer.step()
        checkpoint = {
            "model": OrderedDict(model.state_dict()),
            "optimizer": optimizer.state_dict(),
            "model_args": args,
            "iter_num": 1,
            "best_val_loss": torch.tensor(3.5),
            "config": {"dataset": "shakespeare_char", "learning_rate": 1e-3, "compile": False},
        }
        torch.save(checkpoint, path)
        print(logits_json(model, tokens))
    else:
        sys.exit("mode must be forward or write")


if __name__ == "__main__":
    main()
