"""Core engine benchmark (mini preset, CPU): VP training throughput and LP with the feature
cache versus LP through the backbone, measured in one run. Prints a markdown table.

    .venv/bin/python benchmarks/bench_core.py [--threads 2] [--vp-epochs 3] [--lp-epochs 60]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch


from lthvp.adapt.probing import LPSettings, extract_features, train_linear_head
from lthvp.adapt.prompting import PadPrompt, VPSettings
from lthvp.adapt.vp_training import train_vp
from lthvp.compute.runner import load_source, lp_prepare
from lthvp.data.datasets import load_dataset, resize
from lthvp.results.config import RunConfig  # noqa: E402
from lthvp.results.presets import get_preset, resolve
from lthvp.tickets.models import model_spec


def bench_vp(epochs: int) -> dict:
    cfg = resolve(RunConfig(dataset="digits", method="vp", level=0, shots="full", epochs=epochs))
    preset = get_preset(cfg.preset)
    model, _, _ = load_source(preset, cfg)
    data = load_dataset("digits")
    spec = model_spec(preset.arch)
    x, y = resize(data.train.x, cfg.image_size), data.train.y
    prompt = PadPrompt(preset.canvas, cfg.image_size, spec.mean, spec.std)
    val = (resize(data.val.x, cfg.image_size), data.val.y)
    t0 = time.perf_counter()
    out = train_vp(model, prompt, (x, y), val, resize(data.test.x, cfg.image_size), 10,
                   VPSettings(epochs, cfg.lr, cfg.batch_size, "ilm", "greedy", 0))
    total = time.perf_counter() - t0
    # the training steps alone (no ILM pass, no validation), for the pure step throughput
    opt = torch.optim.Adam(prompt.parameters(), lr=0.01)
    t1 = time.perf_counter()
    for i in range(0, len(y), cfg.batch_size):
        loss = torch.nn.functional.cross_entropy(model(prompt(x[i:i + cfg.batch_size]))[:, :10], y[i:i + cfg.batch_size])
        opt.zero_grad()
        loss.backward()
        opt.step()
    step = time.perf_counter() - t1
    return {"vp_epoch_images_per_s": out.train_images_seen / total, "vp_step_images_per_s": len(y) / step,
            "vp_seconds": total, "n_train": len(y)}


def bench_lp(epochs: int) -> dict:
    cfg = resolve(RunConfig(dataset="digits", method="lp", level=0, shots="full", epochs=epochs))
    preset = get_preset(cfg.preset)
    model, _, _ = load_source(preset, cfg)
    data = load_dataset("digits")
    prepare = lp_prepare(preset, cfg)
    settings = LPSettings(epochs, cfg.lr, cfg.batch_size, 0)
    args = dict(feature_dim=model.feature_dim, n_target=10, s=settings)
    t0 = time.perf_counter()
    feats = {n: extract_features(model, s.x, prepare) for n, s in (("train", data.train), ("val", data.val), ("test", data.test))}
    extract = time.perf_counter() - t0
    t1 = time.perf_counter()
    cached = train_linear_head(lambda idx: feats["train"][idx], data.train.y, feats["val"], data.val.y, feats["test"], **args)
    cached_s = time.perf_counter() - t1

    def through_backbone(idx):
        with torch.no_grad():
            return model.features(prepare(data.train.x[idx]))

    t2 = time.perf_counter()
    direct = train_linear_head(through_backbone, data.train.y, feats["val"], data.val.y, feats["test"], **args)
    direct_s = time.perf_counter() - t2
    return {"lp_extract_s": extract, "lp_cached_train_s": cached_s, "lp_backbone_train_s": direct_s,
            "lp_speedup_train": direct_s / cached_s, "lp_speedup_incl_extract": direct_s / (cached_s + extract),
            "lp_same_probs": bool(torch.allclose(cached.test_probs, direct.test_probs, atol=1e-5))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--vp-epochs", type=int, default=3)
    parser.add_argument("--lp-epochs", type=int, default=60, help="the mini preset's LP default")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    vp, lp = bench_vp(args.vp_epochs), bench_lp(args.lp_epochs)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} threads, digits full ({vp['n_train']} train images), "
          f"VP {args.vp_epochs} epochs, LP {args.lp_epochs} epochs\n")
    print("| measurement | value |\n|---|---|")
    print(f"| VP train step (forward + backward to the prompt), images/s | {vp['vp_step_images_per_s']:.0f} |")
    print(f"| VP epoch incl. ILM re-mapping pass and validation, train images/s | {vp['vp_epoch_images_per_s']:.0f} |")
    print(f"| LP feature extraction (train+val+test, once per ticket) | {lp['lp_extract_s']:.2f} s |")
    print(f"| LP head, {args.lp_epochs} epochs on cached features | {lp['lp_cached_train_s']:.3f} s |")
    print(f"| LP head, {args.lp_epochs} epochs through the backbone | {lp['lp_backbone_train_s']:.2f} s |")
    print(f"| speed-up of cached LP (training only / incl. one extraction) | "
          f"{lp['lp_speedup_train']:.0f}x / {lp['lp_speedup_incl_extract']:.1f}x |")
    print(f"| cached and through-backbone LP give the same test probabilities | {lp['lp_same_probs']} |")


if __name__ == "__main__":
    main()
