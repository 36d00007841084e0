"""Whole VP epochs: LTHVP's ``train_vp`` against a faithful ILM-VP-style loop, in one run.

The reference loop is written here the way ILM-VP's ``instancewise_vp`` script runs: a
DataLoader with worker processes that turns stored uint8 images into resized float tensors per
item, an fp32 ILM mapping pass over the training loader before every epoch (count matrix built
batch by batch on the host), training batches with a per-batch ``.item()`` for loss and
accuracy, and an evaluation pass every epoch (here over the validation split, the same work
LTHVP does); fp16 autocast + GradScaler on CUDA. Same frozen model, data, prompt geometry,
batch size and machine. Also prints a profile of one LTHVP epoch (training steps, mapping +
validation pass, rest) for the plain and the fast path.

    .venv/bin/python benchmarks/bench_vp.py [--threads 1] [--epochs 3] [--repeats 3]
    .venv/bin/python benchmarks/bench_vp.py --arch resnet50 --n-train 256 --device cuda   # paper scale
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


from lthvp.data.datasets import load_dataset, resize  # noqa: E402
from lthvp.tickets.models import build_model, freeze, model_spec  # noqa: E402
from lthvp.adapt.prompting import (EVAL_BATCH, PadPrompt, VPSettings, fast_frozen, greedy_label_mapping,  # noqa: E402
                             source_logits)
from lthvp.adapt.vp_training import train_vp  # noqa: E402
from lthvp.adapt.training import train_epoch  # noqa: E402


class ResizedImages(torch.utils.data.Dataset):
    """Per-item transform as torchvision datasets do it: uint8 -> float in [0, 1] -> resize."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, size: int):
        self.x, self.y, self.size = x, y, size

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        img = self.x[i].float().div(255).unsqueeze(0)
        return F.interpolate(img, size=(self.size, self.size), mode="bilinear", align_corners=False)[0], self.y[i]


class ExpansiveVisualPrompt(nn.Module):
    """ILM-VP's prompt: zero-pad the image into the canvas, add sigmoid(program) on the border."""

    def __init__(self, canvas: int, size: int, mean, std):
        super().__init__()
        self.l_pad = (canvas - size + 1) // 2
        self.r_pad = (canvas - size) // 2
        mask = torch.ones(3, canvas, canvas)
        mask[:, self.l_pad:self.l_pad + size, self.l_pad:self.l_pad + size] = 0
        self.register_buffer("mask", mask)
        self.program = nn.Parameter(torch.zeros(3, canvas, canvas))
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x):
        x = F.pad(x, (self.l_pad, self.r_pad, self.l_pad, self.r_pad), value=0) + torch.sigmoid(self.program) * self.mask
        return (x - self.mean) / self.std


def ilmvp_epochs(model, train_ds, val_ds, spec, canvas, size, epochs, batch, workers, device) -> float:
    """Seconds for ``epochs`` whole ILM-VP-style epochs (mapping pass + training + evaluation)."""
    cuda = device.type == "cuda"
    loader = torch.utils.data.DataLoader(train_ds, batch_size=batch, shuffle=True, num_workers=workers,
                                         persistent_workers=workers > 0, pin_memory=cuda)
    val_loader = torch.utils.data.DataLoader(val_ds, batch_size=batch, num_workers=workers,
                                             persistent_workers=workers > 0, pin_memory=cuda)
    prompt = ExpansiveVisualPrompt(canvas, size, spec.mean, spec.std).to(device)
    opt = torch.optim.Adam(prompt.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    n_source = model.fc.out_features
    t0 = time.perf_counter()
    for _ in range(epochs):
        counts = torch.zeros(n_source, 10)
        with torch.no_grad():  # ILM: fp32 mapping pass over the training loader
            for x, y in loader:
                pred = model(prompt(x.to(device))).argmax(1).cpu()
                counts += torch.bincount(pred * 10 + y, minlength=n_source * 10).view(n_source, 10).float()
        mapping = torch.tensor(greedy_label_mapping(counts), device=device)
        loss_sum, hits = 0.0, 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            with torch.autocast(device.type, dtype=torch.float16, enabled=cuda):
                logits = model(prompt(x))[:, mapping]
                loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            loss_sum += loss.item() * len(y)
            hits += (logits.argmax(1) == y).sum().item()
        correct = 0
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.float16, enabled=cuda):
            for x, y in val_loader:
                correct += (model(prompt(x.to(device)))[:, mapping].argmax(1).cpu() == y).sum().item()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def lthvp_epochs(model, x, y, vx, vy, spec, canvas, size, epochs, batch, fast, device) -> tuple[float, object]:
    prompt = PadPrompt(canvas, size, spec.mean, spec.std).to(device)
    t0 = time.perf_counter()
    out = train_vp(model, prompt, (x, y), (vx, vy), vx[:1], 10, VPSettings(epochs, 0.01, batch, fast=fast))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def profile_epoch(model, x, y, vx, spec, canvas, size, batch, fast, device) -> dict:
    """One epoch split into its parts: training steps, the (validation + mapping) pass, the rest."""
    net = fast_frozen(model) if fast else model
    prompt = PadPrompt(canvas, size, spec.mean, spec.std).to(device)
    opt = torch.optim.Adam(prompt.parameters(), lr=0.01)
    mapping = torch.arange(10, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    train_epoch(lambda idx: net(prompt(x[idx]))[:, mapping], y, torch.randperm(len(y), device=device), batch, opt)
    sync()
    t1 = time.perf_counter()
    logits = source_logits(net, prompt, torch.cat([vx, x]), EVAL_BATCH)
    greedy_label_mapping(torch.bincount(logits[len(vx):].argmax(1) * 10 + y, minlength=logits.shape[1] * 10)
                         .view(-1, 10).cpu())
    sync()
    t2 = time.perf_counter()
    return {"train": t1 - t0, "passes": t2 - t1}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the reference loop")
    parser.add_argument("--arch", default="resnet20", choices=["resnet20", "resnet50"])
    parser.add_argument("--image-size", type=int, default=None, help="default: 24 (resnet20) / 32 (resnet50)")
    parser.add_argument("--n-train", type=int, default=None, help="use only this many training images")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    spec = model_spec(args.arch)
    canvas = spec.input_size
    size = args.image_size or (24 if args.arch == "resnet20" else 32)
    # weights do not change the speed; a seeded random model needs no ticket files or downloads
    torch.manual_seed(0)
    model = freeze(build_model(args.arch)).to(device)
    data = load_dataset("digits")
    train, val = data.train, data.val
    if args.n_train:
        train = train.subset(torch.arange(min(args.n_train, len(train))))
    x, y = resize(train.x.to(device), size), train.y.to(device)
    vx, vy = resize(val.x.to(device), size), val.y.to(device)
    train_ds, val_ds = ResizedImages(train.x, train.y, size), ResizedImages(val.x, val.y, size)
    rows = []
    for _ in range(args.repeats):  # interleaved, so machine noise hits all three alike
        ref = ilmvp_epochs(model, train_ds, val_ds, spec, canvas, size, args.epochs, args.batch, args.workers, device)
        plain, out_plain = lthvp_epochs(model, x, y, vx, vy, spec, canvas, size, args.epochs, args.batch, False, device)
        fast, out_fast = lthvp_epochs(model, x, y, vx, vy, spec, canvas, size, args.epochs, args.batch, True, device)
        rows.append((ref, plain, fast, out_plain.mapping == out_fast.mapping))
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, device {device}, "
          f"{args.threads} threads, {args.arch}, {len(y)} digits at {size} px in a {canvas} px canvas, "
          f"batch {args.batch}, {args.epochs} whole epochs per measurement, {args.repeats} repeats\n")
    print("| repeat | ILM-VP-style loop s | LTHVP plain s | LTHVP fast s | fast / ILM-VP | plain / ILM-VP | fast / plain | same mapping |")
    print("|---|---|---|---|---|---|---|---|")
    for i, (ref, plain, fast, same) in enumerate(rows, 1):
        print(f"| {i} | {ref:.2f} | {plain:.2f} | {fast:.2f} | {ref / fast:.2f}x | {ref / plain:.2f}x | "
              f"{plain / fast:.2f}x | {same} |")
    med = statistics.median
    print(f"| median | {med(r[0] for r in rows):.2f} | {med(r[1] for r in rows):.2f} | {med(r[2] for r in rows):.2f} | "
          f"{med(r[0] / r[2] for r in rows):.2f}x | {med(r[0] / r[1] for r in rows):.2f}x | "
          f"{med(r[1] / r[2] for r in rows):.2f}x | |\n")
    print("Profile of one LTHVP epoch (seconds; 'passes' = one forward over validation + training images "
          "for selection and the next ILM mapping):\n")
    print("| path | training steps (forward + backward to the input) | validation + mapping pass |\n|---|---|---|")
    for fast in (False, True):
        p = profile_epoch(model, x, y, vx, spec, canvas, size, args.batch, fast, device)
        print(f"| {'fast' if fast else 'plain'} | {p['train']:.2f} | {p['passes']:.2f} |")


if __name__ == "__main__":
    main()
