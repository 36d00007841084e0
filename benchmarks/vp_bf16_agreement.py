"""Does bf16 autocast for VP's inference passes (ILM mapping + validation; CPU) keep the results?

Runs train_vp twice per config (fp32 passes vs bf16 passes, both on the fast path) on the legacy
mini family, levels {0, 4, 8} x shots {5, full} x seeds {0, 1}, and counts identical mapping
histories, identical chosen epochs and the largest test-accuracy difference. Measured
2026-11-28: 1/12 identical mapping histories, 7/12 identical epochs, up to 3.9 points of test
accuracy, so the bf16 passes stay off (``VPSettings.bf16_passes=False``).

    .venv/bin/python benchmarks/vp_bf16_agreement.py
"""
import itertools



def main() -> None:
    import torch

    from lthvp.adapt.prompting import PadPrompt, VPSettings
    from lthvp.adapt.vp_training import train_vp
    from lthvp.data.datasets import load_dataset, resize, sample_shots
    from lthvp.results.presets import MINI
    from lthvp.tickets.families import TicketFamily
    from lthvp.tickets.models import FASHION_MEAN, FASHION_STD, freeze

    torch.set_num_threads(1)
    data = load_dataset("digits")
    val, test_x = (resize(data.val.x, 24), data.val.y), resize(data.test.x, 24)

    def accuracy(out) -> float:
        return float((out.test_probs.argmax(1) == data.test.y).float().mean())

    same_map = same_epoch = n = 0
    gaps = []
    for level, shots, seed in itertools.product((0, 4, 8), (5, "full"), (0, 1)):
        model, _ = TicketFamily(MINI.family_dir).load(level)
        freeze(model)
        idx = torch.as_tensor(sample_shots(data.train.y.numpy(), shots, seed))
        x, y = resize(data.train.x[idx], 24), data.train.y[idx]
        outs = []
        for bf16 in (False, True):
            torch.manual_seed(seed)
            settings = VPSettings(10 if shots == "full" else 25, 0.01, 128 if shots == "full" else 32, seed=seed,
                                  bf16_passes=bf16)
            outs.append(train_vp(model, PadPrompt(32, 24, FASHION_MEAN, FASHION_STD), (x, y), val, test_x, 10, settings))
        a, b = outs
        n += 1
        same_map += a.mapping_history == b.mapping_history
        same_epoch += a.best_epoch == b.best_epoch
        gaps.append(accuracy(b) - accuracy(a))
        print(level, shots, seed, a.mapping_history == b.mapping_history, a.best_epoch, b.best_epoch,
              round(accuracy(a), 4), round(accuracy(b), 4), flush=True)
    print(f"mapping histories identical {same_map}/{n}, chosen epoch identical {same_epoch}/{n}, "
          f"test acc diff max {max(map(abs, gaps)):.4f}")


if __name__ == "__main__":
    main()
