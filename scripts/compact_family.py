"""Rewrite a finished ticket family's level files in the compact v2 ticket format (lossless:
the weights and masks load bit-identically) and record the new sha256 in family.json.

Run it only when no builder is writing the family (a builder keeps family.json in memory).

    .venv/bin/python scripts/compact_family.py tickets/mini/family_0 [...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


import torch  # noqa: E402

from lthvp.tickets.families import ARM_KEYS, FAMILY_FILE, TicketFamily  # noqa: E402
from lthvp.tickets.ticketfile import FORMAT, file_sha256, load_ticket_file, save_ticket_file  # noqa: E402


def compact(directory: Path) -> tuple[int, int]:
    fam = TicketFamily(directory)
    info = fam.info
    before = after = 0
    for arm, key in ARM_KEYS.items():
        for level in fam.levels(arm):
            path = fam.verified_path(level, arm)
            model, masks, extra = load_ticket_file(path)
            before += path.stat().st_size
            tmp = path.with_name(path.name + ".v2")
            save_ticket_file(tmp, model, masks, info["arch"], extra)
            again, masks2, _ = load_ticket_file(tmp)
            same = all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
            if not same or any(not torch.equal(masks[n], masks2[n]) for n in masks):
                raise SystemExit(f"{path}: the rewritten file does not load identically; left unchanged")
            tmp.replace(path)
            info[key][str(level)]["sha256"] = file_sha256(path)
            after += path.stat().st_size
    rewind = directory / "rewind.safetensors"
    if rewind.exists():
        model, masks, extra = load_ticket_file(rewind)
        before += rewind.stat().st_size
        save_ticket_file(rewind, model, masks, info["arch"], extra)
        after += rewind.stat().st_size
    info["ticket_format"] = FORMAT
    tmp = directory / (FAMILY_FILE + ".tmp")
    tmp.write_text(json.dumps(info, indent=1, sort_keys=True))
    tmp.replace(directory / FAMILY_FILE)
    return before, after


if __name__ == "__main__":
    for d in sys.argv[1:]:
        b, a = compact(Path(d))
        print(f"{d}: {b / 1e6:.2f} MB -> {a / 1e6:.2f} MB")
