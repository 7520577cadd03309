"""`python -m gmn`: train, apply and evaluate editors.

    python -m gmn train --task dilate --data mnist5k --editor ws+gmn --minutes 30 --out DIR [--device cuda]
    torchrun --standalone --nproc_per_node 2 -m gmn train ...            # data parallel (DDP)
    python -m gmn edit IN.safetensors --editor NAME_OR_PATH [--points 64] [--strength 1.0]
                      [--mask M.png --target T.png] [--refine K] -o OUT.safetensors
    python -m gmn eval --editor NAME_OR_PATH [--split test] [--points 64]
    python -m gmn editors                                                # list the registry
    python -m gmn curvature INR.safetensors [--points 128] [--predictor PATH]   # Fisher diagonal per layer
    python -m gmn curvature --gpt TEXTFILE [--width 48 --heads 4 --layers 1 --steps 150 --seed S]  # of a small GPT
    python -m gmn fit IMAGE -o OUT.safetensors [--optimizer learned|adam] [--steps N] [--target-psnr DB]
    python -m gmn metatrain --out DIR [--minutes 30] [--no-gmn]          # meta-train the learned optimizer
    python -m gmn lm TEXTFILE --optimizer adam|learned [--steps N] [--target-loss L] [--seed S]  # small GPT

Bad input prints one line `error: ...` and exits with code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from inr import checks
from inr.errors import InrError

from .editors import KINDS, EditorError
from .objectives import TASKS
from .optim import OptimizerFileError


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# the bounds of every option, by dest (inr.checks; `python -m inr`'s table, which `fit` shares, plus these)
POINTS = checks.integer(1, checks.MAX_POINTS)
TYPES = {
    "minutes": checks.real(0, 10**6, open_low=True), "batch": checks.integer(1, 4096), "points": POINTS,
    "val_every": checks.integer(1, checks.MAX_STEPS), "val_size": checks.integer(1, 10**7),
    "model": checks.json_object, "outside_weight": checks.real(0, 1000),
    "strength": checks.real(0, checks.MAX_STRENGTH), "refine": checks.integer(0, 100_000),
    "refine_lr": checks.real(0, 1, open_low=True), "adam_lr": checks.real(0, 1, open_low=True),
    "data": checks.nonempty, "editor": checks.nonempty, "meta_steps": checks.integer(1, checks.MAX_STEPS),
    "datasets": checks.dataset_list, "es_pairs": checks.integer(1, 1024),
    "es_sigma": checks.real(0, 10, open_low=True), "horizon": checks.integer(1, 100_000),
    "meta_lr": checks.real(0, 1, open_low=True),
}
COMMAND_TYPES = {"curvature": {
    "points": checks.integer(1, 65_536), "width": checks.integer(4, 512), "heads": checks.integer(1, 64),
    "layers": checks.integer(1, 8), "steps": checks.integer(0, 100_000), "sequences": checks.integer(2, 4096),
    "reference": checks.integer(16, 65_536), "gpt": checks.nonempty}}
MAX_MODEL_PARAMS = 100_000_000  # an editor or learned optimizer that --model sizes (400 MB of float32)


def _check_model(model: dict, build, what: str) -> None:
    """Build the module a --model JSON describes on the meta device (no memory): a bad key, value or size is
    refused before any data is loaded."""
    import torch

    from .modelfile import large_integer

    big = large_integer(model, "--model")
    if big is not None:
        raise EditorError(f"--model: {big[0]} = {big[1]} is out of range (at most {big[2]:,})")
    try:
        with torch.device("meta"):
            module = build()
    except (TypeError, ValueError, KeyError, RuntimeError, EditorError) as e:
        raise EditorError(f"--model does not describe {what}: {(str(e).splitlines() or [repr(e)])[0]}") from None
    n = sum(p.numel() for p in module.parameters())
    if n > MAX_MODEL_PARAMS:
        raise EditorError(f"--model describes {what} of {n:,} parameters; at most {MAX_MODEL_PARAMS:,}")


def _check_resume(out: Path, now: dict, keys: dict[str, str]) -> None:
    """Refuse to resume the run in `out` (its best.json's train_config) with other settings, naming them."""
    card = out / "best.json"
    if not (out / "last.safetensors").exists() or not card.is_file():
        return
    try:
        before = json.loads(card.read_text()).get("train_config") or {}
    except (ValueError, OSError, AttributeError):
        return
    differ = [f"{flag} {before[k]!r} (now {now[k]!r})" for k, flag in keys.items()
              if k in before and before[k] != now[k]]
    if differ:
        raise EditorError(f"{out} holds a run started with other settings: {', '.join(differ)}; resume it with "
                          "those, or use another --out")


def _check_train(args) -> None:
    """Everything `gmn train` can refuse before it loads or builds a zoo."""
    from .editors import Editor, EditorConfig, load_editor

    if args.out is not None:
        checks.output_dir(args.out)
    if args.zoo is not None:
        checks.output_dir(args.zoo, flag="--zoo")
    model = dict(args.model or {})
    fixed = sorted({"kind", "task", "arch", "points"} & set(model))
    if fixed:
        raise EditorError(f"--model cannot set {', '.join(fixed)}: use --editor, --task and --points (the SIREN "
                          "architecture is the zoo's)")
    _check_model(model, lambda: Editor(EditorConfig(kind=args.editor, task=args.task, points=args.points, **model)),
                 f"a {args.editor} editor")
    if args.init:
        from inr.home import in_home

        src, _ = load_editor(in_home(args.init))
        if src.config.kind != args.editor:
            raise EditorError(f"--init {args.init} is a {src.config.kind!r} editor; this run trains {args.editor!r}")
    if args.out is not None:
        _check_resume(Path(args.out), {"task": args.task, "data": args.data, "editor": args.editor, "model": model,
                                       "lr": args.lr, "batch": args.batch, "points": args.points,
                                       "val_size": args.val_size, "seed": args.seed, "limit": args.limit,
                                       "augment": args.augment, "outside_weight": args.outside_weight},
                      {"task": "--task", "data": "--data", "editor": "--editor", "model": "--model", "lr": "--lr",
                       "batch": "--batch", "points": "--points", "val_size": "--val-size", "seed": "--seed",
                       "limit": "--limit", "augment": "--augment", "outside_weight": "--outside-weight"})


def _cmd_train(args) -> None:
    from .train import TrainConfig, train

    _check_train(args)
    model = dict(args.model or {})
    cfg = TrainConfig(
        task=args.task, data=args.data, editor=args.editor, out=args.out, minutes=args.minutes, steps=args.steps,
        batch=args.batch, points=args.points, lr=args.lr, seed=args.seed, val_every=args.val_every,
        val_size=args.val_size, limit=args.limit, zoo_root=args.zoo, device=args.device or _default_device(),
        model=model, augment=args.augment, init=args.init, outside_weight=args.outside_weight,
    )
    state = train(cfg, progress=not args.quiet, log=(lambda *_: None) if args.quiet else print)
    if state.get("best_val") is not None:
        print(f"{args.out}: best val MSE {state['best_val']:.5f} at step {state['best_step']} "
              f"({state['step']} steps, {state['elapsed'] / 60:.1f} min)")


def _cmd_edit(args) -> None:
    import torch

    from inr.files import load_inr, save_tiled
    from inr.images import load_image, to_size
    from inr.threads import set_threads
    from inr.tiles import TileGrid

    from .edit import edit_inr, resolve_editor
    from .editors import load_editor

    _check_output(args.output)
    if args.points is not None and args.points < 1:
        raise EditorError(f"--points must be at least 1, got {args.points}")
    inr = load_inr(args.inr, allow_stack=False)
    editor, card = load_editor(resolve_editor(args.editor))
    grid = inr.grid
    if args.size is not None:
        if args.size < 1 or (grid is not None and not grid.is_single):
            raise EditorError("--size must be a positive integer, and applies to single-SIREN INRs only "
                              "(a tiled INR is edited at its own resolution)")
        grid = TileGrid.single(args.size)
    if grid is None:
        raise EditorError(f"{Path(args.inr).name} does not say its image size; pass --size")
    set_threads(grid.count * (args.points or editor.config.points) * inr.arch.num_neurons, args.threads)
    mask = paint = None
    if editor.config.task == "paint":
        if not (args.mask and args.target):
            raise EditorError("the paint editor needs --mask M.png and --target T.png")
        mask = (to_size(load_image(args.mask, channels=1), grid.image_size) > 0.5).float()
        paint = to_size(load_image(args.target, channels=inr.arch.dim_out), grid.image_size)
    elif args.mask or args.target:
        raise EditorError(f"--mask/--target are for paint editors; '{args.editor}' is a {editor.config.task} editor")
    if args.refine < 0:
        raise EditorError(f"--refine must be at least 0 steps, got {args.refine}")
    res = edit_inr(inr.params, inr.arch, editor, grid=grid, points=args.points, strength=args.strength,
                   mask=mask, paint=paint, seed=args.seed)
    if not all(torch.isfinite(t).all() for t in res.params):
        raise EditorError("the edited INR has NaN or Inf weights; refused")
    params, arch, info = res.params, res.arch, {}
    if args.refine:  # Adam on the full target from the card's default start (gmn.refine.refine_settings)
        from .refine import read_card, refine_edit, refine_settings

        settings = refine_settings(read_card(resolve_editor(args.editor)))
        lr = args.refine_lr or settings["lr"]
        ref, arch = refine_edit(inr.params, inr.arch, res.params, res.arch, grid, editor.config.task, mask=mask,
                                paint=paint, settings=settings, steps=args.refine, lr=lr)
        params = ref.params
        info = {"refine": {"steps": ref.steps, "lr": lr, "start": settings["start"], "tiles": len(ref.tiles)}}
    save_tiled(args.output, params, arch, grid,
               source=f"{inr.meta.get('source', Path(args.inr).name)} + {editor.config.task} ({args.editor})",
               edit={"editor": str(args.editor), "points": int(res.points.shape[0]), "strength": args.strength,
                     **info})
    wider = f", {editor.config.copies} averaged copies: width {res.arch.hidden}" if editor.config.copies > 1 else ""
    print(f"{args.output}: {editor.config.task} edit of {len(res.tiles)} SIREN(s), MSE to target {res.mse:.5f}, "
          f"{res.seconds * 1000:.1f} ms ({res.points.shape[0]} points{wider})")
    if args.refine:
        where = "the editor's result" if settings["start"] == "editor" else "the INR before the edit (plain Adam)"
        print(f"  refined {len(ref.tiles)} SIREN(s) from {where}: {ref.steps} Adam steps "
              f"(lr {lr:g}) on the full target, weighted MSE {ref.mse_before:.5f} -> {ref.mse:.5f}, "
              f"{ref.seconds:.2f} s")


def _check_output(path: str) -> None:
    """Refuse an -o that cannot be written, before any work (`inr.checks.output_file`)."""
    checks.output_file(path, ".safetensors")


def _cmd_eval(args) -> None:
    from .edit import resolve_editor
    from .editors import load_editor
    from .evaluate import editor_eval_set, no_edit, run_adam, run_editor

    editor, card = load_editor(resolve_editor(args.editor))
    dataset = args.data or card.get("data", {}).get("dataset", "mnist5k")
    es = editor_eval_set(editor, dataset, args.split, root=args.zoo, limit=args.limit)  # the editor's λ
    data = es.data
    points = args.points or editor.config.points
    r = run_editor(editor, es, points=points)
    print(f"{dataset} {args.split} ({len(data)} INRs), task {editor.config.task}, {points} points")
    print(f"  no edit           MSE {no_edit(es):.5f}")
    print(f"  editor            MSE {r['mse']:.5f}   {r['seconds_per_inr'] * 1000:.2f} ms/INR")
    for k in (10, 100):
        a = run_adam(es, points=points, steps=k, lr=args.adam_lr)
        print(f"  Adam on points K={k:<4} MSE {a['mse']:.5f}   {a['seconds_per_inr'] * 1000:.2f} ms/INR")
    for k in (10, 100):
        a = run_adam(es, points=None, steps=k, lr=args.adam_lr)
        print(f"  Adam on full   K={k:<4} MSE {a['mse']:.5f}   {a['seconds_per_inr'] * 1000:.2f} ms/INR")


def _cmd_editors(args) -> None:
    from .edit import describe_editor, list_editors

    for name, path in list_editors().items():
        card = path.with_suffix(".json")
        info = json.loads(card.read_text()) if card.exists() else {}
        val = info.get("metrics", {}).get("test_mse") or info.get("metrics", {}).get("val_mse")
        print(f"{name:14s} {info.get('task', '?'):9s} {info.get('editor', '?'):8s} "
              f"{'' if val is None else f'test MSE {val:.4f}':17s} {describe_editor(info)}  ({path.name})")


def _cmd_fit(args) -> None:
    from inr.__main__ import cmd_fit as fit_by_recipe
    from inr.files import save_inr
    from inr.images import load_image
    from inr.siren import SirenArch
    from inr.threads import set_threads
    from inr.tiles import plan_image

    from .optim import fit_learned, load_optimizer, shipped_optimizer

    _check_output(args.output)  # every path below writes -o (the learned one too)
    if args.optimizer is None:  # naming a learned-optimizer file asks for it
        args.optimizer = "learned" if args.learned else "adam"
    if args.optimizer == "adam":
        fit_by_recipe(args)  # the one recipe of `python -m inr fit`, the app and the zoos
        return
    img = load_image(args.image, channels=args.channels)
    plan = plan_image(*img.shape[:2], img.shape[-1], size=args.size, tile=args.tile, overlap=args.overlap,
                      requested_channels=args.channels, aspect=args.aspect)  # the app's and `inr fit`'s plan
    grid, recipe = plan.grid, plan.recipe
    learned = args.learned or shipped_optimizer(img.shape[-1], args.hidden)
    if not grid.is_single or learned is None:
        why = "photos are fitted as tiles" if not grid.is_single else (
            f"no learned optimizer is shipped for {img.shape[-1]}-channel images at width {args.hidden}")
        print(f"notice: {why}; fitting with Adam by the recipe (see BENCHMARKS.md)", file=sys.stderr)
        fit_by_recipe(args)
        return
    size = grid.image_size[0]
    target = plan.target(img)
    arch = SirenArch(hidden=args.hidden, layers=args.layers, dim_out=target.shape[-1])
    set_threads(size * size, args.threads)
    steps = args.steps or recipe.steps
    net, card = load_optimizer(learned)
    net.check(arch)
    if card.get("editable") is not True:
        print("warning: INRs fitted by this learned optimizer are outside the editors' distribution"
              + (f" ({card['editability']})" if card.get("editability") else " (not measured)")
              + "; fit with --optimizer adam to edit them", file=sys.stderr)
    res, used = fit_learned(target, arch, net, steps=steps, target_psnr=args.target_psnr, seed=args.seed,
                            progress=not args.quiet, device=args.device, fallback_lr=args.lr or recipe.lr,
                            notice=lambda m: print(m, file=sys.stderr))
    info = {"steps": int(res.steps.item()), "seed": args.seed, "optimizer": used}
    if used == "adam":
        info["lr"] = args.lr or recipe.lr
    save_inr(args.output, res.params, arch, image_size=[size, size], source=Path(args.image).name,
             psnr=round(res.psnr.item(), 3), fit=info)
    print(f"{args.output}: PSNR {res.psnr.item():.2f} dB after {int(res.steps.item())} steps, {res.seconds:.2f} s "
          f"({used})")


def _cmd_apply(args) -> None:
    from .recipe import apply_files, load_recipe

    recipe = load_recipe(args.recipe)
    out = checks.output_dir(args.output, flag="-o")
    out.mkdir(parents=True, exist_ok=True)
    failed = apply_files(recipe, args.inputs, out)  # one line per input; a failing one does not stop the rest
    if failed:
        raise EditorError(f"{failed} of {len(args.inputs)} input(s) failed (their lines above say why)")


def _cmd_metatrain(args) -> None:
    from .metatrain import MetaTrainConfig, metatrain
    from .optim import LearnedOptimizer, LearnedOptimizerConfig

    checks.output_dir(args.out)
    for flag, path in (("--init", args.init), ("--siren-init", args.siren_init)):
        if path is not None:
            checks.input_file(path, "file", flag=flag)
    opt = dict(args.model or {})
    if args.no_gmn:
        opt["gmn"] = False
    _check_model(opt, lambda: LearnedOptimizer(LearnedOptimizerConfig.from_dict(opt)), "a learned optimizer")
    cfg = MetaTrainConfig(out=args.out, datasets=tuple(args.datasets.split(",")), minutes=args.minutes,
                          meta_steps=args.meta_steps, seed=args.seed, limit=args.limit, optimizer=opt,
                          device=args.device or _default_device(), estimator=args.estimator,
                          es_pairs=args.es_pairs, es_sigma=args.es_sigma, es_params=args.es_params, init=args.init,
                          siren_init=args.siren_init,
                          **{k: v for k, v in (("horizon", args.horizon), ("meta_lr", args.meta_lr),
                                               ("val_every", args.val_every)) if v is not None})
    state = metatrain(cfg, progress=not args.quiet, log=(lambda *_: None) if args.quiet else print)
    print(f"{args.out}: best val PSNR {state['best_val']:.2f} dB at episode {state['best_episode']} "
          f"({state['episode']} episodes, {state['cpu'] / 60:.1f} CPU-min)")


def _cmd_curvature_gpt(args) -> None:
    """`gmn curvature --gpt TEXTFILE`: plain estimator vs the transformer predictor, per map kind (DESIGN.md §13)."""
    from .transformer import GPTConfig, load_text, text_path
    from .transformer_curvature import SEQ, SHIPPED, compare_on_text, load_predictor

    if args.inr is not None:
        raise ValueError("give an INR file or --gpt TEXTFILE, not both")
    if args.points is not None:
        raise ValueError("--points is for INR files; with --gpt the gradient set has --sequences sequences")
    if args.width % args.heads:
        raise ValueError(f"--width {args.width} is not divisible by --heads {args.heads}")
    text = load_text(checks.input_file(text_path(args.gpt), "text file", flag="--gpt"))
    path = None if args.plain_only else Path(args.predictor or SHIPPED)
    model = load_predictor(path)[0] if path is not None else None
    cfg = GPTConfig(width=args.width, heads=args.heads, layers=args.layers, block=SEQ)
    res = compare_on_text(text, cfg, steps=args.steps, seed=args.seed, predictor=model, sequences=args.sequences,
                          reference=args.reference)
    print(f"{Path(args.gpt).name}: GPT {args.width}w·{args.heads}h·{args.layers}L, {args.steps} Adam steps on the "
          f"first 90% (last batch loss {res['train_loss']:.3f}); Fisher diagonal of the block maps from "
          f"{args.sequences} held-out sequences of {SEQ} bytes vs the reference over {args.reference} "
          f"(seed {args.seed})")
    print(f"predictor: {path if model is not None else 'none (plain estimator only)'}")
    print(f"{'map':6s} {'plain nMSE':>11s}" + (f" {'pred nMSE':>11s} {'change':>8s}" if model is not None else ""))
    for kind, plain in res["plain"].items():
        line = f"{kind:6s} {plain:11.4f}"
        if model is not None:
            pred = res["predictor"][kind]
            line += f" {pred:11.4f} {100 * (pred / max(plain, 1e-30) - 1):+7.1f}%"
        print(line)


def _cmd_curvature(args) -> None:
    if args.gpt is not None:
        return _cmd_curvature_gpt(args)
    if args.inr is None:
        raise ValueError("give an INR file, or --gpt TEXTFILE for a small transformer")
    import torch

    from inr.files import load_inr

    from .curvature import default_predictor, fisher_diagonal, load_predictor, output_gradients, uniform_points

    inr = load_inr(args.inr, allow_stack=False)
    args.points = 128 if args.points is None else args.points
    if args.points < 1:
        raise ValueError(f"--points must be at least 1, got {args.points}")
    model = None
    path = None if args.plain_only else args.predictor or default_predictor(inr.arch)
    if args.predictor and inr.arch.dim_out != 1:
        raise ValueError(f"Fisher predictors read 1-channel SIRENs; {Path(args.inr).name} has {inr.arch.dim_out}")
    if path is not None and inr.arch.dim_out == 1:
        model, _ = load_predictor(path)
    x = uniform_points(1, args.points, inr.arch.dim_in, torch.Generator().manual_seed(args.seed))
    with torch.no_grad():
        plain = fisher_diagonal(inr.params, inr.arch, x)  # Σ over output channels
        pred = model(inr.params, output_gradients(inr.params, inr.arch, x)) if model is not None else None
    print(f"{Path(args.inr).name}: SIREN {'→'.join(map(str, inr.arch.dims))}, Fisher diagonal E[(∂f/∂θ)²] from "
          f"{args.points} points uniform in [-1,1]^{inr.arch.dim_in} (seed {args.seed})")
    print(f"predictor: {path if model is not None else 'none (plain estimator only)'}")
    head = f"{'tensor':18s} {'shape':>9s} {'plain mean':>11s} {'plain max':>11s}"
    print(head + (f" {'pred mean':>11s} {'pred max':>11s} {'pred/plain':>10s}" if pred is not None else ""))
    for i, name in enumerate(inr.arch.param_names()):
        t = plain[i][0]
        line = f"{name:18s} {'×'.join(map(str, t.shape)):>9s} {t.mean().item():11.4g} {t.max().item():11.4g}"
        if pred is not None:
            q = pred[i][0]
            ratio = q.sum().item() / max(t.sum().item(), 1e-30)
            line += f" {q.mean().item():11.4g} {q.max().item():11.4g} {ratio:10.3f}"
        print(line)


def _add_train_parser(sub) -> None:
    """The `train` subcommand's options."""
    p = sub.add_parser("train", help="train an editor (resumes from DIR/last.safetensors)")
    p.add_argument("--task", choices=TASKS, default="dilate")
    p.add_argument("--data", choices=["mnist5k", "mnist5k-aug", "patches", "tiles", "lfw"], default="mnist5k")
    p.add_argument("--editor", choices=KINDS, default="ws+gmn")
    p.add_argument("--out", required=True)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--steps", type=int, default=None, help="step budget (overrides --minutes)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--points", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-every", type=int, default=None)
    p.add_argument("--val-size", type=int, default=500)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--zoo", default=None, help="zoo root folder (default: $GMN_HOME/zoo, built when missing)")
    p.add_argument("--model", default=None, help='JSON of EditorConfig overrides, e.g. \'{"hidden": 64}\'')
    p.add_argument("--augment", action="store_true",
                   help="train on copies with random hidden-neuron sign flips (same function, new weights)")
    p.add_argument("--init", default=None,
                   help="start from this editor file's weights (fine-tune; same kind and sizes)")
    p.add_argument("--outside-weight", type=float, default=1.0,
                   help="paint: weigh the training loss outside the mask this many times more (default 1)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(run=_cmd_train)


def _add_edit_parser(sub) -> None:
    """The `edit` subcommand's options."""
    p = sub.add_parser("edit", help="edit an INR file")
    p.add_argument("inr")
    p.add_argument("--editor", required=True, help="registry name or .safetensors path")
    p.add_argument("--points", type=int, default=None)
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("--size", type=int, default=None,
                   help="single SIRENs: resolution of the objective (default: the INR's image size)")
    p.add_argument("--mask", default=None)
    p.add_argument("--target", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: by the work's size)")
    p.add_argument("--refine", type=int, default=0, metavar="K",
                   help="then K Adam steps on the full target, on the changed tiles (paint: a solid stroke with a "
                   "feathered edge), from the start the editor's card names (default 0: the editor's result only)")
    p.add_argument("--refine-lr", type=float, default=None, help="Adam's lr for --refine (default: the card's)")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(run=_cmd_edit)


def _add_eval_parser(sub) -> None:
    """The `eval` subcommand's options."""
    p = sub.add_parser("eval", help="evaluate an editor against the baselines")
    p.add_argument("--editor", required=True)
    p.add_argument("--data", default=None)
    p.add_argument("--split", default="test", choices=["val", "test"])
    p.add_argument("--points", type=int, default=None)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--adam-lr", type=float, default=1e-3)
    p.add_argument("--zoo", default=None)
    p.set_defaults(run=_cmd_eval)


def _add_editors_parser(sub) -> None:
    """The `editors` subcommand's options."""
    p = sub.add_parser("editors", help="list the editor registry")
    p.set_defaults(run=_cmd_editors)


def _add_fit_parser(sub) -> None:
    """The `fit` subcommand's options."""
    from inr.__main__ import add_fit_arguments

    p = sub.add_parser("fit", help="fit a SIREN to an image (learned optimizer or Adam), as `python -m inr fit`")
    add_fit_arguments(p)  # the options of `python -m inr fit` (its --lr is also the fallback's)
    p.add_argument("--optimizer", choices=["learned", "adam"], default=None,
                   help="adam: the fitting recipe the editors were trained on (default unless --learned is "
                   "given); learned: the shipped "
                   "learned optimizer, single gray SIRENs only (its INRs can be outside the editors' distribution)")
    p.add_argument("--learned", default=None,
                   help="learned-optimizer file (default: the shipped one for the image's channels and width)")
    p.set_defaults(run=_cmd_fit)


def _add_metatrain_parser(sub) -> None:
    """The `metatrain` subcommand's options."""
    p = sub.add_parser("metatrain", help="meta-train the learned optimizer (resumes from DIR/last.safetensors)")
    p.add_argument("--out", required=True)
    p.add_argument("--minutes", type=float, default=30.0, help="budget in process CPU-minutes")
    p.add_argument("--meta-steps", type=int, default=None, help="budget in meta-steps (with --minutes)")
    p.add_argument("--datasets", default="mnist5k,patches")
    p.add_argument("--no-gmn", action="store_true", help="ablation: no GradMetaNet features")
    p.add_argument("--model", default=None, help='JSON of LearnedOptimizerConfig overrides, e.g. \'{"update": "ws"}\'')
    p.add_argument("--estimator", choices=["tbptt", "es"], default="tbptt",
                   help="truncated backpropagation (default) or evolution strategies over whole fits")
    p.add_argument("--es-pairs", type=int, default=8, help="ES: antithetic pairs per episode")
    p.add_argument("--es-sigma", type=float, default=0.1, help="ES: perturbation scale")
    p.add_argument("--es-params", choices=["schedule", "head", "all"], default="schedule",
                   help="ES: perturb α, its schedule, per-layer factors, µ (and β2) only; those plus β and "
                   "F's last layer; or every meta-parameter")
    p.add_argument("--horizon", type=int, default=None, help="steps per episode (ES: the fit length scored)")
    p.add_argument("--meta-lr", type=float, default=None)
    p.add_argument("--val-every", type=int, default=None, help="validate every N episodes")
    p.add_argument("--init", default=None, help="start from this learned-optimizer file's meta-parameters "
                   "(those whose names and shapes match this run's)")
    p.add_argument("--siren-init", default=None, help="fit the episodes from this SIREN init (an `inr metainit` "
                   "file) instead of random SIRENs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(run=_cmd_metatrain)


def _add_curvature_parser(sub) -> None:
    """The `curvature` subcommand's options."""
    p = sub.add_parser("curvature", help="per-layer Fisher diagonal of an INR or a small GPT (plain and predicted)")
    p.add_argument("inr", nargs="?", default=None, help="INR file (or give --gpt TEXTFILE)")
    p.add_argument("--points", type=int, default=None, help="INR: points uniform in [-1,1]^d (default 128)")
    p.add_argument("--predictor", default=None, help="Fisher predictor file (default: the shipped one, if any)")
    p.add_argument("--plain-only", action="store_true", help="skip the learned predictor")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gpt", default=None, metavar="TEXTFILE",
                   help="a GPT trained on this file's first 90%%: errors vs its Fisher on the held-out 10%%")
    p.add_argument("--width", type=int, default=48, help="--gpt: model width (default 48)")
    p.add_argument("--heads", type=int, default=4, help="--gpt: attention heads (default 4)")
    p.add_argument("--layers", type=int, default=1, help="--gpt: blocks (default 1)")
    p.add_argument("--steps", type=int, default=150, help="--gpt: Adam steps before capturing (default 150)")
    p.add_argument("--sequences", type=int, default=16, help="--gpt: sequences in the gradient set (default 16)")
    p.add_argument("--reference", type=int, default=512, help="--gpt: sequences of the reference Fisher (default 512)")
    p.set_defaults(run=_cmd_curvature)


def _add_apply_parser(sub) -> None:
    """The `apply` subcommand's options."""
    p = sub.add_parser("apply", help="apply a recipe (a JSON list of edits, gmn/recipe.py) to INR files or images")
    p.add_argument("recipe")
    p.add_argument("inputs", nargs="+", metavar="IN", help="INR .safetensors files or images (fitted first)")
    p.add_argument("-o", "--output", required=True, help="folder for the edited INRs (IN's stem.safetensors)")
    p.set_defaults(run=_cmd_apply)


def _add_lm_parser(sub) -> None:
    """The `lm` subcommand's options."""
    from .lm import add_lm_arguments

    p = sub.add_parser("lm", help="train a small GPT on a text file with Adam or the learned optimizer")
    add_lm_arguments(p)  # prints `loss X after N steps, T s`


def _cmd_ship(args) -> None:
    from .release import ship

    ship(args.task, args.data, args.run_name, args.name, points=args.points, note=args.note)


def _add_ship_parser(sub) -> None:
    """The `ship` subcommand's options (gmn/release.py)."""
    from .release import add_ship_arguments

    p = sub.add_parser("ship", help="ship a finished benchmark run as assets/editors/NAME with its card")
    add_ship_arguments(p)
    p.set_defaults(run=_cmd_ship)


PARSERS = {  # subcommand -> the function that adds its parser (each sets its handler as `run`)
    "train": _add_train_parser,
    "edit": _add_edit_parser,
    "eval": _add_eval_parser,
    "editors": _add_editors_parser,
    "fit": _add_fit_parser,
    "metatrain": _add_metatrain_parser,
    "curvature": _add_curvature_parser,
    "apply": _add_apply_parser,
    "lm": _add_lm_parser,
    "ship": _add_ship_parser,
}


def build_parser() -> argparse.ArgumentParser:
    """The `python -m gmn` parser: one subparser per PARSERS entry, each with --threads and the shared types."""
    ap = argparse.ArgumentParser(prog="python -m gmn", description="GradMetaNet editors: train, edit, evaluate")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for add in PARSERS.values():
        add(sub)
    for name, sp in sub.choices.items():  # every command takes --threads (fit and edit choose by the work's size)
        if name not in ("edit", "fit"):
            sp.add_argument("--threads", type=int, default=None, help="torch threads (default: every core)")
    from inr.__main__ import TYPES as INR_TYPES

    for name, sp in sub.choices.items():
        checks.apply_types(sp, {**INR_TYPES, **TYPES, **COMMAND_TYPES.get(name, {})})
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run one `python -m gmn` subcommand; returns the exit code (2: a one-line error, 130: interrupted)."""
    args = build_parser().parse_args(argv)
    try:
        if args.cmd not in ("edit", "fit") and args.threads is not None:
            from inr.threads import set_threads

            set_threads(requested=args.threads)
        args.run(args)
    except (InrError, EditorError, OptimizerFileError, ValueError, OSError) as e:  # OSError: e.g. a full disk
        print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Exception) as e:  # Exception: the zoo launcher's Ctrl-C
        if not checks.interrupted(e):
            raise
        print("interrupted; the same command resumes (training from its last checkpoint, a zoo from its "
              "finished shards)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
