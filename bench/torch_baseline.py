#!/usr/bin/python3
"""PyTorch (CPU) baseline for icasweep-bench: the same model, batch and loss
as SPEC.md, timed the same way (whole training steps after a warm-up).

One training step = fresh contexts generated with torch ops (SPEC "One
context"), forward of the GPT-2-style decoder (read-in d->E + learned
position embeddings, L pre-LN blocks of causal softmax attention with fused
QKV and an MLP E->4E->E with tanh-GELU, final LN, read-out E->d), the
Plackett-Luce loss over cosine rewards for predictions n = 2..N-1, backward,
and Adam (lr 1e-4, betas 0.9/0.999, eps 1e-8). The whole batch goes through
as one tensor (icasweep works in chunks of 16 contexts; the FLOPs are the
same). Numbers are not meant to match icasweep bit for bit.

Prints a MACHINE line (unless --no-machine) and, per configuration, one line
  RESULT impl=torch config=paper threads=1 s_per_step=... gflops=... rss_mb=...
with the FLOPs convention of bench/bench.c: per token 6 * params + 6 * L * E * T.

--precision bf16 runs the model's forward under
torch.autocast("cpu", dtype=torch.bfloat16) (its linear layers and matrix
products take bf16 inputs; parameters, Adam and the loss stay FP32), the
counterpart of icasweep's precision: bf16.

Threads: --threads, else OMP_NUM_THREADS, else torch's default.
Run with /usr/bin/python3 (Debian's python3-torch).

  /usr/bin/python3 bench/torch_baseline.py --config small --steps 50
  /usr/bin/python3 bench/torch_baseline.py --check 400   # does it train?
"""
import argparse
import datetime
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIGS = {
    # d, N, L, H, E, batch; softmax attention, MLP on, Plackett-Luce
    "paper": dict(d=5, N=20, L=20, H=3, E=96, batch=256, steps=5, warmup=1),
    "small": dict(d=5, N=20, L=2, H=2, E=32, batch=64, steps=50, warmup=5),
}
COS_EPS = 1e-8  # as src/loss.c and torch's cosine_similarity


# ---- data (SPEC "One context", "The sequence") --------------------------

def sample_batch(B, d, N, p, gen):
    """tokens [B, 3N, d], resp [B, N, d], r_seen [B, N]."""
    x = torch.randn(B, 1, d, generator=gen)
    W_star = torch.randn(B, d, d, generator=gen)
    W_bad = torch.randn(B, d, d, generator=gen)
    y_star = torch.bmm(x, W_star)                       # [B, 1, d]
    e = torch.bmm(x, W_bad)
    r = torch.rand(B, N, 1, generator=gen)
    resp = r * y_star + (1 - r) * e                     # [B, N, d]
    noisy = torch.rand(B, N, 1, generator=gen) < p
    r_seen = torch.where(noisy, torch.rand(B, N, 1, generator=gen), r)
    rew = torch.zeros(B, N, d)
    rew[:, :, :1] = r_seen
    tokens = torch.stack([x.expand(B, N, d), resp, rew], dim=2)  # [B, N, 3, d]
    return tokens.reshape(B, 3 * N, d), resp, r_seen.squeeze(-1)


# ---- model (SPEC "The model") -------------------------------------------

class Block(nn.Module):
    def __init__(self, E, H, L):
        super().__init__()
        self.H = H
        self.ln_1 = nn.LayerNorm(E, eps=1e-5)
        self.c_attn = nn.Linear(E, 3 * E)
        self.attn_proj = nn.Linear(E, E)
        self.ln_2 = nn.LayerNorm(E, eps=1e-5)
        self.c_fc = nn.Linear(E, 4 * E)
        self.mlp_proj = nn.Linear(4 * E, E)
        for lin in (self.c_attn, self.c_fc):
            nn.init.normal_(lin.weight, 0.0, 0.02)
            nn.init.zeros_(lin.bias)
        for lin in (self.attn_proj, self.mlp_proj):
            nn.init.normal_(lin.weight, 0.0, 0.02 / math.sqrt(2 * L))
            nn.init.zeros_(lin.bias)

    def attn(self, h, mask):
        B, T, E = h.shape
        H, hd = self.H, E // self.H
        q, k, v = self.c_attn(h).split(E, dim=2)
        q = q.view(B, T, H, hd).transpose(1, 2)         # [B, H, T, hd]
        k = k.view(B, T, H, hd).transpose(1, 2)
        v = v.view(B, T, H, hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        att = att.masked_fill(mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, E)
        return self.attn_proj(y)

    def forward(self, h, mask):
        h = h + self.attn(self.ln_1(h), mask)
        return h + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(h)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, d, T, L, H, E):
        super().__init__()
        self.read_in = nn.Linear(d, E)   # default init: U(+-1/sqrt(fan_in))
        self.wpe = nn.Parameter(torch.randn(T, E) * 0.02)
        self.h = nn.ModuleList([Block(E, H, L) for _ in range(L)])
        self.ln_f = nn.LayerNorm(E, eps=1e-5)
        self.read_out = nn.Linear(E, d)
        self.register_buffer(
            "mask", torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1))
        for lin in (self.read_in, self.read_out):
            bound = 1.0 / math.sqrt(lin.in_features)
            nn.init.uniform_(lin.weight, -bound, bound)
            nn.init.uniform_(lin.bias, -bound, bound)

    def forward(self, tokens):
        h = self.read_in(tokens) + self.wpe
        for blk in self.h:
            h = blk(h, self.mask)
        return self.read_out(self.ln_f(h))


# ---- loss (SPEC "Loss: Plackett-Luce over cosine rewards") ---------------

def pl_loss(pred, resp, r_seen):
    """pred [B, N, d] (prediction n at query token 3n), resp [B, N, d],
    r_seen [B, N]. loss_n over y_0..y_{n-1} ranked by r_seen (highest first,
    ties by index) = sum_j [-s_j + log sum_{k>=j} exp(s_k)], s = cos; mean
    over n = 2..N-1, then over contexts."""
    B, N, d = pred.shape
    dots = pred @ resp.transpose(1, 2)                          # [B, n, i]
    nrm = pred.norm(dim=2).unsqueeze(2) * resp.norm(dim=2).unsqueeze(1)
    S = dots / nrm.clamp_min(COS_EPS)
    perm = torch.sort(r_seen, dim=1, descending=True, stable=True).indices
    Sp = S.gather(2, perm.unsqueeze(1).expand(B, N, N))         # [B, n, j]
    n_idx = torch.arange(N).view(1, N, 1)
    valid = perm.unsqueeze(1) < n_idx                           # response j among the first n
    ex = torch.where(valid, Sp.exp(), torch.zeros_like(Sp))
    Z = ex.flip(2).cumsum(2).flip(2)                            # sum over k >= j
    logZ = torch.where(valid, Z, torch.ones_like(Z)).log()
    loss_n = torch.where(valid, logZ - Sp, torch.zeros_like(Sp)).sum(2)  # [B, n]
    return loss_n[:, 2:].mean()


# ---- benchmark -----------------------------------------------------------

def n_params(c):
    E, d, T, L = c["E"], c["d"], 3 * c["N"], c["L"]
    block = 2 * E + E * 3 * E + 3 * E + E * E + E + 2 * E + E * 4 * E + 4 * E + 4 * E * E + E
    return d * E + E + T * E + L * block + 2 * E + E * d + d


def step_flops(c):
    T = 3 * c["N"]
    return (6 * n_params(c) + 6 * c["L"] * c["E"] * T) * T * c["batch"]


def make(c, seed=0):
    torch.manual_seed(seed)
    model = GPT(c["d"], 3 * c["N"], c["L"], c["H"], c["E"])
    got = sum(p.numel() for p in model.parameters())
    assert got == n_params(c), (got, n_params(c))
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8,
                           weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed + 1)
    return model, opt, gen


def train_step(model, opt, gen, c, prof=None, precision="fp32"):
    """One whole step; returns the loss. prof (dict) accumulates phase times."""
    N = c["N"]
    t0 = time.perf_counter()
    with torch.no_grad():
        tokens, resp, r_seen = sample_batch(c["batch"], c["d"], N, 0.0, gen)
    t1 = time.perf_counter()
    if precision == "bf16":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(tokens)
        out = out.float()
    else:
        out = model(tokens)
    loss = pl_loss(out[:, 0::3, :], resp, r_seen)   # query tokens 3n
    t2 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    t3 = time.perf_counter()
    opt.step()
    t4 = time.perf_counter()
    if prof is not None:
        for k, v in (("data", t1 - t0), ("forward", t2 - t1), ("backward", t3 - t2),
                     ("optimizer", t4 - t3)):
            prof[k] = prof.get(k, 0.0) + v
    return loss.item()


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench(name, c, steps, warmup, threads, precision):
    model, opt, gen = make(c)
    rss0 = rss_mb()
    losses = [train_step(model, opt, gen, c, None, precision) for _ in range(warmup)]
    prof, dt = {}, []
    for _ in range(steps):
        t0 = time.perf_counter()
        losses.append(train_step(model, opt, gen, c, prof, precision))
        dt.append(time.perf_counter() - t0)
        if not math.isfinite(losses[-1]):
            sys.exit(f"torch_baseline: {name}: loss {losses[-1]}")
    med, mean = statistics.median(dt), statistics.mean(dt)
    T = 3 * c["N"]
    gflops = step_flops(c) / med * 1e-9
    print(f"CONFIG {name}: L={c['L']} H={c['H']} E={c['E']} softmax ffn=on loss=pl "
          f"batch={c['batch']} (params {n_params(c)}, T {T}, tokens/step {c['batch'] * T})")
    print(f"  step: median {med:.4f} s, min {min(dt):.4f}, max {max(dt):.4f} "
          f"({steps} steps after {warmup} warm-up); loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    print(f"  throughput: {c['batch'] * T / med:.0f} tokens/s, {gflops:.2f} GFLOP/s model "
          f"({step_flops(c) * 1e-9:.3g} GFLOP/step)")
    print(f"  peak RSS: {rss_mb():.1f} MB (process peak; {rss0:.1f} MB before training)")
    # phases are means per step, so they are compared with the mean step
    print(f"  profile (s/step, % of mean step {mean:.4f} s): " + " ".join(
        f"{k} {v / steps:.4f} ({100 * v / steps / mean:.1f}%)" for k, v in prof.items()))
    print(f"RESULT impl=torch config={name} precision={precision} threads={threads} "
          f"steps={steps} "
          f"s_per_step={med:.6f} s_min={min(dt):.6f} s_max={max(dt):.6f} "
          f"tokens_per_s={c['batch'] * T / med:.1f} gflops={gflops:.3f} "
          f"rss_mb={rss_mb():.1f} rss_base_mb={rss0:.1f} params={n_params(c)} " + " ".join(
              f"p_{k}={v / steps:.6f}" for k, v in prof.items()), flush=True)


def check(steps):
    """Sanity check: the small configuration's loss falls over `steps`."""
    c = CONFIGS["small"]
    model, opt, gen = make(c)
    window, first = [], None
    for s in range(steps):
        window.append(train_step(model, opt, gen, c))
        if len(window) == 50:
            m = sum(window) / len(window)
            first = m if first is None else first
            print(f"  steps {s - 49}-{s}: mean loss {m:.4f}", flush=True)
            window = []
    last = m
    ok = last < first
    print(f"CHECK small: mean loss {first:.4f} -> {last:.4f}: "
          f"{'decreases' if ok else 'DOES NOT decrease'}")
    return 0 if ok else 1


def blas_lib():
    """Which BLAS shared object this process mapped (for the MACHINE line)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {ln.split()[-1] for ln in f if "blas" in ln.lower() and "/" in ln}
        return ",".join(sorted(os.path.realpath(p) for p in libs)) or "none mapped"
    except OSError:
        return "unknown"


def machine_line(threads):
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name"):
                    cpu = ln.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%dT%H:%M:%S%z")
    print(f'MACHINE cpu="{cpu}" cores={os.cpu_count()} '
          f'OMP_NUM_THREADS={os.environ.get("OMP_NUM_THREADS", "(unset)")} '
          f'torch={torch.__version__} torch_threads={threads} blas="{blas_lib()}" date={now}')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", choices=["paper", "small", "both"], default="both")
    ap.add_argument("--steps", type=int, help="timed steps (default 5 paper, 50 small)")
    ap.add_argument("--warmup", type=int, help="untimed steps (default 1 paper, 5 small)")
    ap.add_argument("--threads", type=int, help="default: OMP_NUM_THREADS")
    ap.add_argument("--check", type=int, metavar="STEPS",
                    help="train the small config for STEPS steps and check the loss falls")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--no-machine", action="store_true")
    a = ap.parse_args()
    threads = a.threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0) \
        or torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    if not a.no_machine:
        machine_line(threads)
    if a.check:
        return check(a.check)
    for name in (["paper", "small"] if a.config == "both" else [a.config]):
        c = CONFIGS[name]
        bench(name, c, a.steps or c["steps"],
              c["warmup"] if a.warmup is None else a.warmup, threads, a.precision)
    return 0


if __name__ == "__main__":
    sys.exit(main())
