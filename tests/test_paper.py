"""Paper preset pieces on the CPU, offline: pre-trained weight loading, one-shot / imported / IMP
families, canvas geometry, a ResNet-50 VP/LP step at small resolution, dataset splits and the
clear message for an absent dataset."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lthvp.adapt.prompting import PadPrompt
from lthvp.commands import paper
from lthvp.data import paper_data
from lthvp.data.datasets import DataMissingError, load_dataset
from lthvp.tickets.families import TicketFamily
from lthvp.tickets.models import build_model, freeze, model_spec
from lthvp.tickets.sparsity import apply_masks, global_magnitude_prune, remaining_fraction

ARCH = "resnet18"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A stand-in for the ImageNet weights file (random ResNet-18, DataParallel prefix)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "resnet18-fake.pth"
    torch.save({"module." + k: v for k, v in build_model(ARCH).state_dict().items()}, path)
    return path


def test_load_pretrained_local_and_missing(weights, tmp_path, monkeypatch):
    model = paper.load_pretrained(ARCH, weights)
    assert not model.training and model.fc.out_features == 1000
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    with pytest.raises(DataMissingError) as err:
        paper.load_pretrained("resnet50")
    msg = str(err.value)
    assert "resnet50-11ad3fa6.pth" in msg and str(tmp_path / "th" / "hub" / "checkpoints") in msg and "--weights" in msg
    with pytest.raises(ValueError, match="missing keys"):
        paper.load_pretrained("resnet50", weights)  # a ResNet-18 file for a ResNet-50: strict


@pytest.mark.slow  # ResNet-50 pruning/training on CPU: tens of seconds
def test_one_shot_family_fractions_and_report(weights, tmp_path):
    info = paper.one_shot_family(weights, [0, 1, 3], tmp_path / "fam", arch=ARCH, random_levels=[3])
    for level in (0, 1, 3):
        entry = info["levels"][str(level)]
        assert entry["remaining"]["without_stem_and_head"] == pytest.approx(0.8 ** level, abs=1e-6)
        assert entry["pruned"] == {"stem": False, "head": False}
        assert entry["remaining"]["all_prunable"] > entry["remaining"]["without_stem_and_head"] or level == 0
    fam = TicketFamily(tmp_path / "fam")
    model, masks = fam.load(3)
    assert remaining_fraction(masks) == pytest.approx(0.512, abs=1e-6)
    rmodel, rmasks = fam.load(3, "random")
    assert {n: int(m.sum()) for n, m in rmasks.items()} == {n: int(m.sum()) for n, m in masks.items()}
    assert any(not torch.equal(rmasks[n], masks[n]) for n in masks)
    # resumable: a second call skips existing levels (files untouched)
    mtime = fam.level_path(3).stat().st_mtime_ns
    paper.one_shot_family(weights, [0, 1, 3], tmp_path / "fam", arch=ARCH, random_levels=[3])
    assert fam.level_path(3).stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match="other"):
        paper.one_shot_family(weights, [1], tmp_path / "fam", arch=ARCH, ignore=())


@pytest.mark.slow  # ResNet-50 pruning/training on CPU: tens of seconds
def test_one_shot_prunes_stem_and_head_when_asked(weights, tmp_path):
    info = paper.one_shot_family(weights, [2], tmp_path / "fam", arch=ARCH, ignore=())
    entry = info["levels"]["2"]
    assert entry["pruned"] == {"stem": True, "head": True}
    assert entry["remaining"]["all_prunable"] == pytest.approx(0.64, abs=1e-6)


@pytest.mark.slow  # ResNet-50 pruning/training on CPU: tens of seconds
def test_import_family_infers_levels(weights, tmp_path):
    model = paper.load_pretrained(ARCH, weights)
    masks = global_magnitude_prune(model, None, 1 - 0.8 ** 2, paper.DEFAULT_IGNORE)
    apply_masks(model, masks)
    ck = tmp_path / "resnet18_dyn4_2_checkpoint.pth"
    torch.save({"model." + k: v for k, v in model.state_dict().items()}, ck)
    torch.save({"model." + k: v for k, v in masks.items()}, tmp_path / "resnet18_dyn4_2_mask.pth")
    plain = tmp_path / "sparse.pth"
    torch.save(model.state_dict(), plain)
    info = paper.import_family([ck], tmp_path / "fam", arch=ARCH)
    assert info["levels"]["2"]["format"] == "checkpoint+mask"
    info = paper.import_family({5: plain}, tmp_path / "fam2", arch=ARCH)
    assert info["levels"]["5"]["format"] == "zeros"
    assert paper.infer_level(plain, 0.8 ** 4 + 1e-4) == 4
    _, got = TicketFamily(tmp_path / "fam").load(2)
    assert all(torch.equal(got[n], masks[n]) for n in masks)


def _image_folder(root, classes=3, per_class=4, size=40):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        d = root / f"class_{c}"
        d.mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return root


@pytest.mark.slow  # ResNet-50 pruning/training on CPU: tens of seconds
def test_imp_imagefolder_rewinds_and_resumes(weights, tmp_path):
    folder = _image_folder(tmp_path / "imgs")
    recipe = paper.IMPRecipe(epochs=1, batch_size=4, image_size=32, max_steps=1)
    info = paper.imp_family_imagefolder(weights, folder, tmp_path / "fam", arch=ARCH, levels=2, recipe=recipe,
                                        val_folder=folder, num_workers=0, device="cpu")
    for level in (0, 1, 2):
        assert info["levels"][str(level)]["remaining"]["without_stem_and_head"] == pytest.approx(0.8 ** level, abs=1e-6)
    assert info["levels"]["1"]["steps"] == 1 and info["levels"]["0"]["source_val_accuracy"] is not None
    fam = TicketFamily(tmp_path / "fam")
    lvl1, m1 = fam.load(1)
    pre = paper.load_pretrained(ARCH, weights).state_dict()
    # fine-tuned from the rewound pre-trained weights: kept weights moved a little, pruned ones are zero
    w = lvl1.state_dict()["layer1.0.conv1.weight"]
    assert (w[m1["layer1.0.conv1.weight"] == 0] == 0).all()
    assert torch.allclose(w, pre["layer1.0.conv1.weight"] * m1["layer1.0.conv1.weight"], atol=1e-2)
    mtime = fam.level_path(2).stat().st_mtime_ns
    paper.imp_family_imagefolder(weights, folder, tmp_path / "fam", arch=ARCH, levels=2, recipe=recipe,
                                 val_folder=folder, num_workers=0, device="cpu")
    assert fam.level_path(2).stat().st_mtime_ns == mtime
    assert json.loads((tmp_path / "fam" / "family.json").read_text())["settings"]["rewind"] == "pre-trained weights"


@pytest.mark.parametrize("image_size,pad", [(32, 96), (128, 48)])
def test_canvas_geometry(image_size, pad):
    spec = model_spec("resnet50")
    p = PadPrompt(224, image_size, spec.mean, spec.std)
    assert (p.pad_lo, p.pad_hi) == (pad, pad)
    assert int((p.mask == 0).sum()) == image_size ** 2
    assert 3 * int(p.mask.sum()) == 3 * (224 ** 2 - image_size ** 2)  # 147,456 (32) / 101,376 (128) pixels
    x = torch.rand(2, 3, image_size, image_size)
    prompted = p.prompted(x)
    assert prompted.shape == (2, 3, 224, 224)
    assert torch.equal(prompted[..., pad:pad + image_size, pad:pad + image_size], x)
    assert torch.allclose(prompted[..., :pad, :], torch.full_like(prompted[..., :pad, :], 0.5))  # grey init


def test_paper_preset_sizes_and_matched_lp():
    from lthvp.compute.runner import lp_prepare
    from lthvp.results.config import RunConfig
    from lthvp.results.presets import get_preset, resolve

    preset = get_preset("paper")
    assert preset.arch == "resnet50" and preset.canvas == 224
    assert resolve(RunConfig(preset="paper", dataset="cifar100", method="vp")).image_size == 32
    assert resolve(RunConfig(preset="paper", dataset="dtd", method="vp")).image_size == 128
    assert resolve(RunConfig(preset="paper", dataset="dtd", method="lp")).image_size == 224
    cfg = resolve(RunConfig(preset="paper", dataset="svhn", method="lp", lp_input="matched"))
    assert cfg.image_size == 32
    out = lp_prepare(preset, cfg)(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    assert out.shape == (2, 3, 224, 224)


@pytest.mark.slow  # ResNet-50 pruning/training on CPU: tens of seconds
def test_resnet50_vp_and_lp_step_small_resolution():
    torch.manual_seed(0)
    model = freeze(build_model("resnet50"))
    masks = global_magnitude_prune(model, None, 0.5, paper.DEFAULT_IGNORE)
    apply_masks(model, masks)
    spec = model_spec("resnet50")
    prompt = PadPrompt(48, 16, spec.mean, spec.std)
    opt = torch.optim.Adam(prompt.parameters(), lr=0.01)
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    mapping = torch.tensor([3, 7, 11])
    before = prompt.program.detach().clone()
    loss = F.cross_entropy(model(prompt(x))[:, mapping], y)
    loss.backward()
    opt.step()
    assert not torch.equal(before, prompt.program.detach())
    assert all(p.grad is None for p in model.parameters())
    feats = model.features((F.interpolate(x, size=48) - prompt.mean) / prompt.std)
    assert feats.shape == (4, 2048)
    head = torch.nn.Linear(2048, 3)
    F.cross_entropy(head(feats), y).backward()
    assert head.weight.grad is not None
    assert remaining_fraction(model) < 0.6


def test_resnet50_structured_and_quantized_through_the_compression_functions():
    """Filter pruning (conv1 and conv2 of every Bottleneck) and int8/int4 weights on a random-init
    ResNet-50 with stem and head dense, as the paper families keep them."""
    from lthvp.tickets.compression import (check_structured, dead_channels, fake_quantize_, structured_masks,
                                           zero_pruned_bn)
    from lthvp.tickets.sparsity import assert_masked, dense_masks, imp_kept_count

    torch.manual_seed(0)
    model = build_model("resnet50").eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # trained-looking BatchNorm, so silent channels are silent because they were made so
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.bias.copy_(torch.randn(m.num_features, generator=g))
                m.running_mean.copy_(torch.randn(m.num_features, generator=g))
    total = sum(m.numel() for m in dense_masks(model, paper.DEFAULT_IGNORE).values())
    plan = structured_masks(model, imp_kept_count(total, 8), paper.DEFAULT_IGNORE)
    assert len(plan.groups) == 32 and {g.conv.rsplit(".", 1)[1] for g in plan.groups} == {"conv1", "conv2"}
    assert "conv1.weight" not in plan.masks and "fc.weight" not in plan.masks
    assert abs(plan.kept - plan.target) <= plan.tolerance and plan.kept == sum(int(m.sum()) for m in plan.masks.values())
    apply_masks(model, plan.masks)
    zero_pruned_bn(model, plan.masks, plan.groups)
    check_structured(model, plan.masks, plan.groups)
    mods = dict(model.named_modules())
    outs = {}
    hooks = [mods[g.bn].register_forward_hook(lambda m, i, o, n=g.bn: outs.__setitem__(n, o)) for g in plan.groups]
    with torch.no_grad():
        model(torch.rand(2, 3, 64, 64))
    for h in hooks:
        h.remove()
    assert all(torch.count_nonzero(outs[g.bn][:, dead_channels(plan.masks, g)]) == 0 for g in plan.groups)
    with pytest.raises(ValueError, match="below that floor"):  # downsample convs alone hold ~12% of the weights
        structured_masks(model, imp_kept_count(total, 10), paper.DEFAULT_IGNORE)
    before = model.layer3[0].conv2.weight.detach().clone()
    stats = fake_quantize_(model, 4, plan.masks)
    assert_masked(model, plan.masks)
    assert stats["bits_per_weight"] == 4 and stats["quantized_weights"] == total + 9408 + 2048000  # + stem and fc
    w = model.layer3[0].conv2.weight.detach().flatten(1)
    assert max(len(torch.unique(row)) for row in w) <= 15
    scale = before.flatten(1).abs().amax(1) / 7
    assert bool(((w - before.flatten(1)).abs() <= scale[:, None] / 2 * (1 + 1e-6)).all())


@pytest.mark.slow  # ResNet-18 families written to disk: tens of seconds
def test_paper_compress_cli_adds_arms_to_a_one_shot_family(weights, tmp_path, capsys):
    paper.one_shot_family(weights, [0, 2], tmp_path / "fam", arch=ARCH)
    assert paper.main(["compress", "--arm", "quant8", "--out", str(tmp_path / "fam")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert sorted(out["levels"]) == ["0", "2"] and out["levels"]["2"]["bits_per_weight"] == 8
    assert out["levels"]["2"]["source_test_accuracy"] is None  # no --val-folder: not measured, and said so
    assert paper.main(["compress", "--arm", "structured_noft", "--out", str(tmp_path / "fam"), "--levels", "2"]) == 0
    fam = TicketFamily(tmp_path / "fam")
    model, masks = fam.load(2, "structured_noft")
    from lthvp.tickets.compression import check_structured, filter_groups

    check_structured(model, masks, filter_groups(model))
    assert fam.info["structured_noft_levels"]["2"]["remaining"]["without_stem_and_head"] == pytest.approx(0.64, abs=0.002)
    assert paper.main(["compress", "--arm", "quant8", "--out", str(tmp_path / "fam"), "--levels", "0"]) == 0  # resumes
    assert fam.info["builder"] == "one_shot" and fam.levels("quant8") == [0, 2]


@pytest.mark.parametrize("name", sorted(paper.PAPER_DATASETS))
def test_absent_dataset_clear_message(name, tmp_path):
    if name in ("cifar10", "svhn"):  # registered by lthvp.data.datasets with its own (equally clear) message
        with pytest.raises(DataMissingError, match="--download"):
            load_dataset(name, root=tmp_path, download=False)
        return
    with pytest.raises(DataMissingError) as err:
        load_dataset(name, root=tmp_path, download=False)
    msg = str(err.value)
    assert str(tmp_path) in msg and "--download" in msg and paper.PAPER_DATASETS[name].tv_class in msg


def test_eurosat_decode_cache_and_disjoint_splits(tmp_path):
    from PIL import Image

    base = tmp_path / "eurosat" / "2750"
    names = ["AnnualCrop", "Forest", "River"]
    k = 0
    for c in names:
        (base / c).mkdir(parents=True)
        for i in range(20):
            img = np.zeros((64, 64, 3), dtype=np.uint8)
            img[..., 0], img[..., 1] = k % 256, k // 256  # unique content per image
            Image.fromarray(img).save(base / c / f"{c}_{i}.png")
            k += 1
    arrays = paper.decode_paper_dataset("eurosat", tmp_path, download=False, num_workers=0)
    assert arrays["x_train"].shape == (60, 128, 128, 3) and arrays["x_train"].dtype == np.uint8
    assert paper_data._cache_path(tmp_path, "eurosat", 128).exists()
    data = paper.build_splits("eurosat", arrays)
    assert data.classes == names
    assert (len(data.train), len(data.val), len(data.test)) == (39, 3, 18)  # 30% test, then 10% val per class

    def ids(split):
        return {(int(a), int(b)) for a, b in zip(split.x[:, 0, 0, 0], split.x[:, 1, 0, 0])}

    tr, va, te = ids(data.train), ids(data.val), ids(data.test)
    assert not (tr & te) and not (va & te) and not (tr & va)
    assert len(tr | va | te) == 60
    assert sorted(np.bincount(data.test.y.numpy()).tolist()) == [6, 6, 6]  # stratified 30%
    again = paper.build_splits("eurosat", paper.decode_paper_dataset("eurosat", tmp_path, download=False))
    assert torch.equal(again.test.x, data.test.x)  # seeded, from the cache


def test_gpu_benchmark_script_runs_on_cpu(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_gpu.py"
    spec = importlib.util.spec_from_file_location("bench_gpu", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    res = bench.main(["--device", "cpu", "--arch", "resnet18", "--canvas", "32", "--image-size", "16", "--batch", "4",
                      "--lp-batch", "4", "--images", "8", "--steps", "1", "--warmup", "1", "--lp-head-epochs", "1",
                      "--json", str(tmp_path / "b.json")])
    assert res["fast"]["vp_images_per_s"] > 0 and res["reference"]["lp_images_per_s"] > 0
    assert 0 < res["vp_fraction_of_bf16_matmul"] and json.loads((tmp_path / "b.json").read_text())["args"]["arch"] == "resnet18"
