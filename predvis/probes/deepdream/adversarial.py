"""Mode ``attack``: the adversarial table and grid for a trained classifier run.

On the run's held-out test digits: untargeted and targeted L-inf PGD for every ``attack.eps``,
untargeted and targeted patch attacks for every ``attack.patches`` side. Writes
``tables/adversarial.md``, ``metrics/adversarial.csv`` and ``frames/adversarial_grid.png``
(originals, perturbations amplified, adversarial images, each titled with its prediction).
"""
from __future__ import annotations

import io
from pathlib import Path

import torch
from rich.console import Console

from predvis.errors import PredvisError
from predvis.probes.deepdream import attacks as A
from predvis.runtime.capabilities import LabelledTestImages


def _grid_figure(path: Path, rows: list[tuple[str, torch.Tensor, list[str]]]) -> None:
    """rows: (label, images (N, C, H, W) in [0, 1], titles) -> one PNG, a row per entry."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from predvis.run import atomic_write_bytes

    n = rows[0][1].shape[0]
    fig, axes = plt.subplots(len(rows), n, figsize=(1.1 * n + 1.2, 1.25 * len(rows)), squeeze=False)
    for r, (label, images, titles) in enumerate(rows):
        for c in range(n):
            ax = axes[r][c]
            img = images[c].detach().float().cpu()
            img = (img[0] if img.shape[0] == 1 else img.permute(1, 2, 0)).numpy()
            ax.imshow(img, cmap="gray", vmin=0, vmax=1)
            ax.set_title(titles[c], fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(label, fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def prepare_attacks(cfg, target, generator: torch.Generator):
    """Check the inputs, then return ``execute(out) -> summary`` that attacks and writes the table."""
    method = target.method
    if method is None or not isinstance(method, LabelledTestImages):
        raise PredvisError("mode attack needs a trained classifier run (model.source=classifier or its run directory)")
    a = cfg.attack
    model = target.source.module.eval()
    device = next(model.parameters()).device
    x, y = method.labelled_test_images()
    # the test split is ordered by label: draw a fixed random subset so every class appears
    pick = torch.randperm(len(y), generator=torch.Generator().manual_seed(cfg.seed))[: a.images]
    x, y = x[pick].to(device), y[pick].to(device)
    h, w = x.shape[2:]
    for p in a.patches:
        if p > h or p > w:
            raise PredvisError(f"attack.patches: patch size {p} is larger than the images ({h}x{w})")
        if a.patch_at:  # raises a one-line error if the chosen place does not fit
            A.square_mask((1, 1, h, w), p, generator, tuple(a.patch_at))
    with torch.no_grad():
        logits = model(x[:1])
    if logits.dim() != 2:
        raise PredvisError(f"attacks need (B, K) class logits; this model outputs shape {tuple(logits.shape)}")
    return lambda out: _attack(cfg, target, model, x, y, int(logits.shape[1]), out, generator)


def _attack(cfg, target, model, x, y, classes: int, out: Path, generator: torch.Generator) -> dict:
    from predvis.run import atomic_write_text, write_csv
    from predvis.tables import markdown_table

    a = cfg.attack
    target_labels = (y + a.target_shift) % classes

    results, rows, shown = [], [], {}
    for eps in a.eps:
        alpha = a.alpha or 2.5 * eps / a.steps
        for kind, tgt in (("PGD untargeted", None), ("PGD targeted", target_labels)):
            if eps == 0 and alpha == 0:
                adv = x.clone()
            else:
                adv = A.pgd(model, x, y, eps, alpha, a.steps, generator, target=tgt, random_start=a.random_start)
            m = A.attack_metrics(model, x, adv, y, tgt)
            results.append((kind, f"eps {eps:g}", m))
            # show the smallest eps that fools at least half the digits (else the largest)
            if kind == "PGD untargeted" and (kind not in shown or shown[kind][2] < 0.5):
                shown[kind] = (eps, adv, m.success)
    for p in a.patches:
        for kind, tgt in (("patch untargeted", None), ("patch targeted", target_labels)):
            mask = A.square_mask(tuple(x.shape), p, generator, tuple(a.patch_at) if a.patch_at else None)
            adv = A.patch_attack(model, x, y, mask, a.patch_alpha, a.patch_steps, generator, target=tgt)
            m = A.attack_metrics(model, x, adv, y, tgt)
            results.append((kind, f"{p}x{p} px", m))
            if kind == "patch untargeted" and (kind not in shown or shown[kind][2] < 0.5):
                shown[kind] = (p, adv, m.success)
    for kind, budget, m in results:
        rows.append([kind, budget, m.clean_acc, m.success, m.conf_before, m.conf_after, m.linf, m.l2])
    head = ["attack", "budget", "clean acc", "success rate", "conf before", "conf after", "mean L-inf", "mean L2"]
    text = (
        f"# Adversarial examples\n\nModel: {target.source.name}; {len(y)} held-out test digits; pixels in "
        f"[0, 1]. PGD: {a.steps} steps of alpha = {'2.5 eps / steps' if not a.alpha else a.alpha}"
        f"{', random start' if a.random_start else ''}; patch: {a.patch_steps} steps of {a.patch_alpha}, "
        f"{'at ' + str(tuple(a.patch_at)) if a.patch_at else 'random location per image'}. Targeted attacks aim at (label + {a.target_shift}) mod {classes}.\n\n"
        "success rate: among the digits classified correctly before the attack, the fraction whose "
        "prediction changed (untargeted) or became the target (targeted). conf: mean softmax probability "
        "of the predicted class. L-inf, L2: mean per-image norm of the perturbation.\n\n"
        + markdown_table(head, rows)
    )
    atomic_write_text(out / "tables" / "adversarial.md", text)
    write_csv(out / "metrics" / "adversarial.csv", [dict(zip(head, r)) for r in rows])

    n = min(a.grid, len(y))
    with torch.no_grad():
        pred0 = model(x[:n]).argmax(1).tolist()
    grid_rows = [("original", x[:n], [f"{t} -> {p}" for t, p in zip(y[:n].tolist(), pred0)])]
    for kind in ("PGD untargeted", "patch untargeted"):
        if kind not in shown:
            continue
        budget, adv, _ = shown[kind]
        adv = adv[:n]
        delta = adv - x[:n]
        scale = max(float(delta.abs().max()), 1e-8)
        with torch.no_grad():
            pred = model(adv).argmax(1).tolist()
        tag = f"eps {budget:g}" if kind.startswith("PGD") else f"{budget}px"
        grid_rows.append((f"{kind}\n{tag}: delta", 0.5 + 0.5 * delta / scale, [f"delta x{0.5 / scale:.3g}"] * n))
        grid_rows.append((f"{kind}\n{tag}", adv, [f"pred {p}" for p in pred]))
    _grid_figure(out / "frames" / "adversarial_grid.png", grid_rows)
    Console(stderr=True, soft_wrap=True).print(text, markup=False)
    return {"images": len(y), "rows": [[r[0], r[1]] + [float(v) for v in r[2:]] for r in rows]}
