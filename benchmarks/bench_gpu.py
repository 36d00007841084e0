"""Paper-scale throughput: VP and LP images/s for ResNet-50 against a plain reference loop, in one run.

Fast path: data held on the device (uint8, resized once), bf16 autocast, channels_last, loss and
accuracy summed on the device (one host sync per measurement), optional torch.compile.
Reference: DataLoader over host tensors, fp32, NCHW, per-batch ``.item()`` (ILM-VP's loop).
Also reports the VP step's share of the device's measured bf16 matmul throughput, counting the
FLOPs of forward plus backward to the input (the frozen weights get no gradient).

    GPU:  .venv/bin/python benchmarks/bench_gpu.py                       # 224 canvas, 32 px images
    CPU:  .venv/bin/python benchmarks/bench_gpu.py --device cpu --canvas 64 --image-size 32 \\
              --batch 8 --images 64 --steps 3 --warmup 1 --threads 1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import time

import torch
import torch.nn.functional as F

from lthvp.adapt.prompting import PadPrompt, count_matrix
from lthvp.tickets.models import build_model, freeze, model_spec


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def amp(device: torch.device, enabled: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def matmul_tflops(device: torch.device, dtype=torch.bfloat16, n: int | None = None, iters: int = 10) -> float:
    """Measured dense matmul throughput (the roofline the VP step is compared to)."""
    n = n or (8192 if device.type == "cuda" else 1024)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        a @ b
    sync(device)
    return 2 * n ** 3 * iters / (time.perf_counter() - t0) / 1e12


def vp_flops_per_image(model, prompt, device, n_target: int) -> float:
    """FLOPs of one VP step per image: forward + backward to the prompt (no weight gradients)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(2, 3, prompt.image_size, prompt.image_size, device=device)
    with FlopCounterMode(display=False) as counter:
        loss = model(prompt(x))[:, :n_target].float().logsumexp(1).sum()
        loss.backward()
    prompt.program.grad = None
    return counter.get_total_flops() / 2


def make_data(n: int, size: int, n_target: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g), torch.randint(0, n_target, (n,), generator=g)


def vp_fast(model, prompt, x_u8, y, a) -> dict:
    """Device-resident VP epochs: no DataLoader, no per-step host sync; one ILM count pass."""
    dev = torch.device(a.device)
    x = x_u8.to(dev).float().div_(255)  # resized once (already at image size here)
    y = y.to(dev)
    opt = torch.optim.Adam(prompt.parameters(), lr=0.01)
    mapping = torch.arange(a.n_target, device=dev)
    net = torch.compile(model) if a.compile else model
    cl = torch.channels_last if a.channels_last else torch.contiguous_format

    def step(idx, loss_sum, correct):
        with amp(dev, a.bf16):
            logits = net(prompt(x[idx]).contiguous(memory_format=cl))[:, mapping].float()
        loss = F.cross_entropy(logits, y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach()
        correct += (logits.argmax(1) == y[idx]).sum()

    loss_sum, correct = torch.zeros((), device=dev), torch.zeros((), device=dev, dtype=torch.long)
    batches = [torch.arange(i, i + a.batch, device=dev) % len(y) for i in range(0, (a.warmup + a.steps) * a.batch, a.batch)]
    for idx in batches[:a.warmup]:
        step(idx, loss_sum, correct)
    sync(dev)
    t0 = time.perf_counter()
    for idx in batches[a.warmup:]:
        step(idx, loss_sum, correct)
    sync(dev)
    train_s = time.perf_counter() - t0
    float(loss_sum)  # the one host sync
    # ILM pass: forward only over the training images, counts accumulated on the device
    t1 = time.perf_counter()
    counts = torch.zeros(1000, a.n_target, dtype=torch.long, device=dev)
    with torch.inference_mode(), amp(dev, a.bf16):
        for i in range(0, len(y), a.batch):
            pred = net(prompt(x[i:i + a.batch]).contiguous(memory_format=cl)).argmax(1)
            counts += count_matrix(pred, y[i:i + a.batch], 1000, a.n_target)
    counts = counts.cpu()
    ilm_s = time.perf_counter() - t1
    return {"vp_images_per_s": a.steps * a.batch / train_s, "ilm_pass_images_per_s": len(y) / ilm_s}


def vp_reference(model, prompt, x_u8, y, a) -> dict:
    """ILM-VP-style loop: DataLoader over host float tensors, fp32, per-batch .item() calls."""
    dev = torch.device(a.device)
    ds = torch.utils.data.TensorDataset(x_u8.float() / 255, y)
    loader = torch.utils.data.DataLoader(ds, batch_size=a.batch, shuffle=True, drop_last=True)
    opt = torch.optim.Adam(prompt.parameters(), lr=0.01)
    mapping = torch.arange(a.n_target, device=dev)
    done, t0, total_loss, total_correct = 0, None, 0.0, 0
    while done < a.warmup + a.steps:
        for xb, yb in loader:
            if done == a.warmup:
                sync(dev)
                t0 = time.perf_counter()
            xb, yb = xb.to(dev), yb.to(dev)
            logits = model(prompt(xb))[:, mapping]
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total_loss += loss.item()
            total_correct += (logits.argmax(1) == yb).sum().item()
            done += 1
            if done == a.warmup + a.steps:
                break
    sync(dev)
    return {"vp_images_per_s": a.steps * a.batch / (time.perf_counter() - t0)}


def lp_fast(model, x_u8, a, spec) -> dict:
    """Feature extraction once (bf16, channels_last, on the device), then the head on cached features."""
    dev = torch.device(a.device)
    mean = torch.tensor(spec.mean, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=dev).view(1, 3, 1, 1)
    x = x_u8.to(dev)
    cl = torch.channels_last if a.channels_last else torch.contiguous_format

    def extract():
        out = []
        with torch.inference_mode(), amp(dev, a.bf16):
            for i in range(0, len(x), a.lp_batch):
                xb = F.interpolate(x[i:i + a.lp_batch].float() / 255, size=a.canvas, mode="bilinear",
                                   antialias=True, align_corners=False)
                out.append(model.features(((xb - mean) / std).contiguous(memory_format=cl)).float())
        return torch.cat(out)

    extract()  # warm-up (cudnn autotune, compile)
    sync(dev)
    t0 = time.perf_counter()
    feats = extract()
    sync(dev)
    ext_s = time.perf_counter() - t0
    y = torch.randint(0, a.n_target, (len(feats),), device=dev)
    head = torch.nn.Linear(feats.shape[1], a.n_target).to(dev)
    opt = torch.optim.Adam(head.parameters(), lr=0.01)
    sync(dev)
    t1 = time.perf_counter()
    for _ in range(a.lp_head_epochs):
        for i in range(0, len(y), a.lp_batch):
            loss = F.cross_entropy(head(feats[i:i + a.lp_batch]), y[i:i + a.lp_batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    sync(dev)
    head_s = time.perf_counter() - t1
    return {"lp_extract_images_per_s": len(x) / ext_s,
            "lp_head_images_per_s": a.lp_head_epochs * len(y) / head_s,
            # one LP epoch through the backbone vs. from the cache: what a sweep over epochs costs
            "lp_images_per_s": len(x) / ext_s}


def lp_reference(model, x_u8, a, spec) -> dict:
    """Plain LP: every epoch runs the fp32 backbone under the head, DataLoader, .item() per batch."""
    dev = torch.device(a.device)
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    xf = (F.interpolate(x_u8.float() / 255, size=a.canvas, mode="bilinear", antialias=True) - mean) / std
    y = torch.randint(0, a.n_target, (len(xf),))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xf, y), batch_size=a.lp_batch, shuffle=True)
    head = torch.nn.Linear(model.feature_dim, a.n_target).to(dev)
    opt = torch.optim.Adam(head.parameters(), lr=0.01)
    with torch.no_grad():  # warm-up batch
        model.features(next(iter(loader))[0].to(dev))
    sync(dev)
    t0, n = time.perf_counter(), 0
    for xb, yb in loader:
        xb, yb = xb.to(dev), yb.to(dev)
        with torch.no_grad():
            f = model.features(xb)
        loss = F.cross_entropy(head(f), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()
        n += len(yb)
    sync(dev)
    return {"lp_images_per_s": n / (time.perf_counter() - t0)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--canvas", type=int, default=224)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--n-target", type=int, default=10)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lp-batch", type=int, default=256)
    p.add_argument("--images", type=int, default=2048, help="images held on the device (ILM and LP passes)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--lp-head-epochs", type=int, default=10)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--compile", action="store_true", help="torch.compile the backbone on the fast path")
    p.add_argument("--bf16", dest="bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast on the fast path (default: on for CUDA, off for CPU)")
    p.add_argument("--channels-last", dest="channels_last", action=argparse.BooleanOptionalAction, default=None,
                   help="channels_last on the fast path (default: on for CUDA, off for CPU)")
    p.add_argument("--json", default=None, help="also write the results to this file")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    if a.bf16 is None:
        a.bf16 = dev.type == "cuda"  # CPU bf16 is emulated on many hosts: off unless asked
    if a.channels_last is None:
        a.channels_last = dev.type == "cuda"
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    spec = model_spec(a.arch)
    model = freeze(build_model(a.arch)).to(dev)
    x_u8, y = make_data(a.images, a.image_size, a.n_target)
    res = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
           "threads": torch.get_num_threads(), "torch": torch.__version__, "args": vars(a)}
    res["matmul_bf16_tflops"] = matmul_tflops(dev, torch.bfloat16)
    res["matmul_fp32_tflops"] = matmul_tflops(dev, torch.float32)
    prompt = PadPrompt(a.canvas, a.image_size, spec.mean, spec.std).to(dev)
    res["vp_gflops_per_image"] = vp_flops_per_image(model, prompt, dev, a.n_target) / 1e9
    res["reference"] = {**vp_reference(model, prompt, x_u8, y, a), **lp_reference(model, x_u8, a, spec)}
    fast_model = model.to(memory_format=torch.channels_last) if a.channels_last else model
    res["fast"] = {**vp_fast(fast_model, prompt, x_u8, y, a), **lp_fast(fast_model, x_u8, a, spec)}
    vp_tflops = res["fast"]["vp_images_per_s"] * res["vp_gflops_per_image"] / 1e3
    res["vp_achieved_tflops"] = vp_tflops
    res["vp_fraction_of_bf16_matmul"] = vp_tflops / res["matmul_bf16_tflops"]
    res["speedup"] = {"vp": res["fast"]["vp_images_per_s"] / res["reference"]["vp_images_per_s"],
                      "lp_epoch": res["fast"]["lp_images_per_s"] / res["reference"]["lp_images_per_s"]}
    f, r = res["fast"], res["reference"]
    print(f"device: {res['device']} ({res['threads']} threads), {a.arch} canvas {a.canvas}, image {a.image_size}, "
          f"batch {a.batch}, bf16={a.bf16}, channels_last={a.channels_last}, compile={a.compile}")
    print("| measure | reference | fast | speedup |\n|---|---|---|---|")
    print(f"| VP step images/s | {r['vp_images_per_s']:.1f} | {f['vp_images_per_s']:.1f} | {res['speedup']['vp']:.2f}x |")
    print(f"| LP images/s (backbone pass) | {r['lp_images_per_s']:.1f} | {f['lp_images_per_s']:.1f} | "
          f"{res['speedup']['lp_epoch']:.2f}x |")
    print(f"| ILM count pass images/s | | {f['ilm_pass_images_per_s']:.1f} | |")
    print(f"| LP head on cached features images/s | | {f['lp_head_images_per_s']:.0f} | |")
    print(f"VP step: {res['vp_gflops_per_image']:.2f} GFLOP/image (fwd + bwd to input) -> {vp_tflops:.3f} TFLOP/s = "
          f"{100 * res['vp_fraction_of_bf16_matmul']:.1f}% of measured bf16 matmul ({res['matmul_bf16_tflops']:.3f} "
          f"TFLOP/s; fp32 {res['matmul_fp32_tflops']:.3f})")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(res, fh, indent=1, default=str)
    return res


if __name__ == "__main__":
    main()
