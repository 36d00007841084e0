"""``run(config) -> RunResult``: the one path from a config to a stored result.

config -> preset defaults -> ticket (family level, arm) -> data (N-shot train, val, test) ->
VP or LP -> metrics on the test split (touched once) -> store.
"""

from __future__ import annotations

import base64
import io
import os
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from lthvp.adapt.outcome import AdaptOutcome
from lthvp.adapt.probing import FeatureCache, LPSettings, extract_features, split_digest, train_linear_head
from lthvp.adapt.prompting import PadPrompt, VPSettings
from lthvp.adapt.vp_training import PromptJob, train_vp_group
from lthvp.compute.executor import MAX_GROUP, Progress, cell_key, pending, put_once, resolve_all
from lthvp.compute.executor import batches as executor_batches
from lthvp.data.datasets import Split, TargetData, load_dataset, resize, sample_fewshot_val, sample_shots
from lthvp.paths import feature_dir
from lthvp.results.calibration import temperature_scaled_metrics
from lthvp.results.config import RunConfig
from lthvp.results.metrics import evaluate
from lthvp.results.predictions import encode_probs
from lthvp.results.presets import Preset, get_preset, resolve
from lthvp.results.provenance import provenance
from lthvp.results.run_record import RunRecord
from lthvp.tickets.families import TicketFamily, family_dir
from lthvp.tickets.models import freeze, model_spec, to_device
from lthvp.tickets.sparsity import assert_masked, remaining_fraction, sparsity_report



@dataclass
class RunResult:
    """A finished run: ``record`` is the plain-JSON document the store keeps."""

    record: dict

    @property
    def hash(self) -> str:
        return self.record["hash"]

    @property
    def metrics(self) -> dict:
        return self.record["metrics"]

    def summary(self) -> dict:
        """The one-line JSON the CLI prints."""
        return {"hash": self.hash, **self.record["config"], **self.metrics,
                "remaining_fraction": self.record["remaining_fraction"], "best_epoch": self.record["best_epoch"],
                "cached": self.record.get("cached", False)}


def png_base64(image: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def load_source(preset: Preset, cfg: RunConfig):
    family = TicketFamily(family_dir(preset.family_dir, cfg.family))
    model, masks = family.load(cfg.level, cfg.arm)
    assert_masked(model, masks)
    return freeze(model), masks, family.ticket_id(cfg.level, cfg.arm)


def default_device() -> torch.device:
    """LTHVP_DEVICE if set, else the first GPU when there is one, else the CPU."""
    return torch.device(os.environ.get("LTHVP_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu"))


def source_on_device(preset: Preset, cfg: RunConfig, device: str | torch.device | None):
    """The frozen source model of a config on its device: (model, masks, ticket id, device)."""
    device = torch.device(device) if device is not None else default_device()
    model, masks, ticket_id = load_source(preset, cfg)
    return to_device(model, device), masks, ticket_id, device


def _vp_job(cfg, preset, data: TargetData, train_idx, val: Split, progress, device) -> PromptJob:
    """A run's prompt, data (held on the device for the whole run) and settings."""
    spec = model_spec(preset.arch)

    def on_device(split_x):
        return resize(split_x.to(device), cfg.image_size)

    steps = 0 if cfg.method == "map" else cfg.steps
    bf16 = cfg.precision == "bf16"  # steps and mapping/validation passes; the test pass stays fp32
    settings = VPSettings(cfg.epochs, cfg.lr, cfg.batch_size, cfg.mapping, cfg.assignment, cfg.seed, steps,
                          bf16_passes=bf16, bf16_steps=bf16)
    return PromptJob(PadPrompt(preset.canvas, cfg.image_size, spec.mean, spec.std).to(device),
                     (on_device(data.train.x[train_idx]), data.train.y[train_idx].to(device)),
                     (on_device(val.x), val.y.to(device)), on_device(data.test.x), settings, progress)


def _vp_outcome(prompt: PadPrompt, out) -> AdaptOutcome:
    moved = float((torch.sigmoid(prompt.program.detach()) - 0.5).abs().mul(prompt.mask[0]).sum() / (3 * prompt.mask.sum()))
    return AdaptOutcome(out.test_probs, out.val_probs, out.best_epoch, out.curves,
                        timings={"images_seen": out.train_images_seen}, mapping=out.mapping,
                        mapping_history=out.mapping_history, prompt_png=png_base64(out.prompt_image),
                        prompt_shift=moved, steps=out.steps)


def _run_vp(cfg, preset, model, data: TargetData, train_idx, val: Split, val_idx, ticket_id, progress,
            device) -> AdaptOutcome:
    job = _vp_job(cfg, preset, data, train_idx, val, progress, device)
    torch.manual_seed(cfg.seed)
    (out,) = train_vp_group(model, [job], data.num_classes)
    return _vp_outcome(job.prompt, out)


def lp_prepare(preset: Preset, cfg: RunConfig):
    """LP input transform: resize to the model input ('full') or zero-pad the VP-sized image
    into the same canvas with no prompt ('matched', isolating method from resolution)."""
    spec = model_spec(preset.arch)
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    if cfg.lp_input == "matched":
        pad = PadPrompt(preset.canvas, cfg.image_size, spec.mean, spec.std)
        return lambda x: (pad.pad(resize(x, cfg.image_size)) - mean) / std
    return lambda x: (resize(x, preset.canvas) - mean) / std


def _run_lp(cfg, preset, model, data: TargetData, train_idx, val: Split, val_idx, ticket_id, progress,
            device) -> AdaptOutcome:
    to_model = lp_prepare(preset, cfg)

    def prepare(x):
        return to_model(x.to(device))
    cache = FeatureCache(feature_dir())
    transform = f"{cfg.lp_input}:{cfg.image_size}:{preset.canvas}"
    t0 = time.time()
    feats = {name: cache.get_or_compute((ticket_id, cfg.dataset, name, transform, split_digest(split)),
                                        lambda s=split: extract_features(model, s.x, prepare).cpu(),
                                        shape=(len(split), model.feature_dim))
             for name, split in (("train", data.train), ("val", data.val), ("test", data.test))}
    features_s = time.time() - t0
    feats = {k: v.to(device) for k, v in feats.items()}
    train_f, train_y = feats["train"][train_idx.to(device)], data.train.y[train_idx].to(device)
    val_f = feats["val"] if val_idx is None else feats["train"][val_idx.to(device)]
    out = train_linear_head(lambda idx: train_f[idx], train_y, val_f, val.y.to(device), feats["test"],
                            model.feature_dim, data.num_classes, LPSettings(cfg.epochs, cfg.lr, cfg.batch_size, cfg.seed),
                            progress)
    return AdaptOutcome(out.test_probs, out.val_probs, out.best_epoch, out.curves,
                        timings={"features_seconds": round(features_s, 3)})


ADAPTERS = {"vp": _run_vp, "map": _run_vp, "lp": _run_lp}  # "map" is VP with the prompt frozen


def _inputs(cfg: RunConfig, data: TargetData):
    """The run's training indices (its shot sample) and validation split."""
    train_idx = torch.as_tensor(sample_shots(data.train.y.numpy(), cfg.shots, cfg.seed))
    val_idx, val = None, data.val
    if cfg.val_per_class:
        val_idx = torch.as_tensor(sample_fewshot_val(data.train.y.numpy(), train_idx.numpy(), cfg.val_per_class, cfg.seed))
        val = data.train.subset(val_idx)
    return train_idx, val, val_idx


def _record(cfg: RunConfig, preset: Preset, data: TargetData, model, masks, ticket_id, out: AdaptOutcome,
            n_train: int, val: Split, val_idx, seconds: float, device, **timings) -> RunRecord:
    assert_masked(model, masks)
    test_probs, val_probs = out.test_probs.cpu().float(), out.val_probs.cpu().float()
    metrics = evaluate(test_probs, data.test.y)
    spec = model_spec(preset.arch)
    return RunRecord(
        hash=cfg.hash(), config=cfg.to_dict(),
        metrics={k: metrics[k] for k in ("accuracy", "ece", "mce", "nll", "brier")},
        scaled=temperature_scaled_metrics(val_probs, val.y, test_probs, data.test.y),
        predictions={"test": encode_probs(test_probs), "val": encode_probs(val_probs),
                     "val_labels": val.y.tolist() if val_idx is not None else None},
        n_test=metrics["n"], n_train=n_train, n_val=len(val),
        reliability=metrics["reliability"], per_class_accuracy=metrics["per_class_accuracy"],
        classes=data.classes, remaining_fraction=remaining_fraction(masks),
        sparsity=sparsity_report(model, masks, spec.stem, spec.head)["remaining"],
        ticket=ticket_id, best_epoch=out.best_epoch, curves=out.curves, mapping=out.mapping,
        mapping_history=out.mapping_history, prompt_png=out.prompt_png, prompt_shift=out.prompt_shift,
        steps=out.steps, timings={"total_seconds": round(seconds, 3), **timings, **out.timings},
        provenance=provenance(str(device)),
    )


def run(config: RunConfig, store=None, progress: Progress | None = None, force: bool = False,
        device: str | torch.device | None = None) -> RunResult:
    """Run one experiment (or return the stored result for the same config hash)."""
    cfg = resolve(config)
    key = cfg.hash()
    if store is not None and not force:
        cached = store.get(key)
        if cached is not None:
            return RunResult({**cached, "cached": True})
    t0 = time.time()
    preset = get_preset(cfg.preset)
    data = load_dataset(cfg.dataset)
    train_idx, val, val_idx = _inputs(cfg, data)
    model, masks, ticket_id, device = source_on_device(preset, cfg, device)
    out = ADAPTERS[cfg.method](cfg, preset, model, data, train_idx, val, val_idx, ticket_id, progress, device)
    record = _record(cfg, preset, data, model, masks, ticket_id, out, int(len(train_idx)), val, val_idx,
                     time.time() - t0, device)
    if store is not None:
        store.put(record)
    return RunResult(record.to_json())


def group_key(cfg: RunConfig) -> str | None:
    """Runs that can train together (:func:`lthvp.compute.executor.cell_key` of the resolved config)."""
    return cell_key(resolve(cfg))


def run_group(configs: list[RunConfig], store=None, device: str | torch.device | None = None,
              progress: list[Progress | None] | None = None) -> list[RunResult]:
    """Run the configs of one group (equal :func:`group_key`) as one batched prompt training on
    one loaded model; each record is the one :func:`run` would store (to float rounding; see
    :func:`lthvp.adapt.vp_training.train_vp_group`) and says how many runs shared its training.
    ``progress``: one callback (or None) per config."""
    cfgs = [resolve(c) for c in configs]
    keys = {cell_key(c) for c in cfgs}
    if len(keys) != 1 or None in keys or len({c.hash() for c in cfgs}) < len(cfgs):
        raise ValueError("run_group needs distinct VP/mapping-only configs that differ only in their seed")
    progress = progress or [None] * len(cfgs)
    t0 = time.time()
    preset, data = get_preset(cfgs[0].preset), load_dataset(cfgs[0].dataset)
    model, masks, ticket_id, device = source_on_device(preset, cfgs[0], device)
    inputs = [_inputs(c, data) for c in cfgs]
    jobs = [_vp_job(c, preset, data, idx, val, p, device) for c, (idx, val, _), p in zip(cfgs, inputs, progress)]
    outs = train_vp_group(model, jobs, data.num_classes)
    seconds = (time.time() - t0) / len(cfgs)  # each run's share of the group's time
    results = []
    for c, job, out, (idx, val, val_idx) in zip(cfgs, jobs, outs, inputs):
        record = _record(c, preset, data, model, masks, ticket_id, _vp_outcome(job.prompt, out), int(len(idx)), val,
                         val_idx, seconds, device, group_size=len(cfgs))
        if store is not None:
            store.put(record)
        results.append(RunResult(record.to_json()))
    return results


def run_batch(configs: list[RunConfig], progress: list[Progress | None] | None = None, device=None) -> list[dict]:
    """Run one batch of :func:`lthvp.compute.executor.batches` with no store (the executor puts each
    record with ``put_once``): a batch of one with :func:`run`, a group with :func:`run_group`."""
    progress = progress or [None] * len(configs)
    if len(configs) == 1:
        return [run(configs[0], None, progress=progress[0], device=device).record]
    return [r.record for r in run_group(configs, None, device=device, progress=progress)]


def batches(configs: list[RunConfig], max_group: int = MAX_GROUP) -> list[list[RunConfig]]:
    """:func:`lthvp.compute.executor.batches` by :func:`group_key` (configs as given, resolved or not)."""
    return executor_batches(configs, max_group, key=group_key)


def run_many(configs: list[RunConfig], store, on_batch: Callable[[list[RunConfig], Exception | None], None]
             | None = None, max_group: int = MAX_GROUP) -> int:
    """Run configs in this process without a job queue (benchmarks; the sweep goes through the
    queue, :mod:`lthvp.compute.sweep`): resolve and skip stored once, each batch run by
    :func:`run_batch` and stored by ``put_once``; a batch that fails is
    reported and the rest go on. Returns the number of configs that failed."""
    failed = 0
    for batch in executor_batches(list(pending(resolve_all(configs), store).values()), max_group):
        err = None
        try:
            for cfg, record in zip(batch, run_batch(batch)):
                status, why = put_once(store, cfg.hash(), record)
                if why:
                    raise ValueError(why)
        except (ValueError, FileNotFoundError, RuntimeError) as exc:
            err, failed = exc, failed + len(batch)
        if on_batch:
            on_batch(batch, err)
    return failed
