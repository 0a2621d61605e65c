"""`fashion-tui` console entry: the app by default, plus headless subcommands.

    fashion-tui [--checkpoint P] [--run-dir D] [--device cpu] [--export-dir D] [--from-png F]
    fashion-tui generate --class "sneaker:0.7,boot:0.3" --n 16 --out DIR ...
    fashion-tui info FILE.png
    fashion-tui evaluate --checkpoint P ...

User mistakes end in one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

PROG = "fashion-tui"

from core.cpu import prefer_passive_openmp

prefer_passive_openmp()  # before anything imports torch


def _fail(message: str, code: int = 2) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (argparse's default adds the multi-line usage; --help still has it)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def _add_sampling_args(p: argparse.ArgumentParser) -> None:
    from core.sampling.limits import (
        AUTOGUIDANCE_ON, AUTOGUIDANCE_RANGE, AUTOGUIDED_GUIDANCE, DEFAULT_BLACK_LEVEL, DEFAULT_GUIDANCE,
        DEFAULT_GUIDANCE_INTERVAL, DEFAULT_SAMPLER, DEFAULT_STEPS, GUIDANCE_RANGE, MAX_BLACK_LEVEL, MAX_STEPS, MIN_STEPS,
        REQUEST_SAMPLERS, STUDENT_GUIDANCE_RANGE, STUDENT_STEPS,
    )

    lo, hi = DEFAULT_GUIDANCE_INTERVAL
    per_sampler = lambda table: ", ".join(f"{value:g} for {name}" for name, value in table.items())
    p.add_argument("--guidance", type=float, default=None,
                   help=f"classifier-free guidance g, {GUIDANCE_RANGE[0]:g}-{GUIDANCE_RANGE[1]:g} "
                        f"(0 = none; default {per_sampler(DEFAULT_GUIDANCE)}; {AUTOGUIDED_GUIDANCE:g} with --autoguidance)")
    p.add_argument("--guidance-interval", default=None, metavar="LO:HI",
                   help=f"guide only at diffusion steps LO-HI, or 'all' (default {lo}:{hi}: the noisier steps and the last one run unguided)")
    p.add_argument("--black-level", type=int, default=DEFAULT_BLACK_LEVEL, metavar="N",
                   help=f"final pixels at or below N/255 become black, 0-{MAX_BLACK_LEVEL} "
                        f"(default {DEFAULT_BLACK_LEVEL}; 0 = raw model output)")
    p.add_argument("--sampler", choices=REQUEST_SAMPLERS, default=None,
                   help=f"dpm (DPM-Solver++(2M), deterministic), ddim (deterministic), ddpm (strided, the original) or "
                        f"student (a distilled student in {STUDENT_STEPS[0]}-{STUDENT_STEPS[1]} steps, one call per item each, "
                        f"guidance {STUDENT_GUIDANCE_RANGE[0]:g}-{STUDENT_GUIDANCE_RANGE[1]:g}, where one is loaded); "
                        f"default: generate draws with the student where one is loaded and it can draw what is asked, "
                        f"else {DEFAULT_SAMPLER}; evaluate scores {DEFAULT_SAMPLER}, the reference")
    p.add_argument("--steps", type=int, default=None,
                   help=f"denoising steps, {MIN_STEPS}-{MAX_STEPS} ({STUDENT_STEPS[0]}-{STUDENT_STEPS[1]} for the student; "
                        f"default {per_sampler(DEFAULT_STEPS)})")
    p.add_argument("--autoguidance", type=float, nargs="?", const=AUTOGUIDANCE_ON, default=0.0, metavar="W",
                   help=f"push items away from the guide model's errors with weight W, {AUTOGUIDANCE_RANGE[0]:g}-{AUTOGUIDANCE_RANGE[1]:g} "
                        f"(autoguidance, beside --guidance; {AUTOGUIDANCE_ON:g} without a value; default 0 = guidance alone)")
    p.add_argument("--checkpoint", default=None, help="generator checkpoint (default: the shipped model)")
    p.add_argument("--guide", default=None, metavar="PATH",
                   help="autoguidance's guide checkpoint (default: NAME-guide.pt beside the generator, if there is one)")
    p.add_argument("--student", default=None, metavar="PATH",
                   help="the student sampler's checkpoint (default: NAME-student.pt beside the generator, if there is one; "
                        "fashion-train distill makes one)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, mps or auto")
    _add_precision_arg(p, "sampling")


def _add_precision_arg(p: argparse.ArgumentParser, what: str) -> None:
    from core.device import PRECISIONS

    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help=f"{what} precision: auto (default: bf16 where the device computes it natively, else fp32), "
                        f"bf16 or fp32; a PNG's recipe keeps the precision that drew it")


def _add_steering_args(p: argparse.ArgumentParser) -> None:
    from core.images import FILM_FORMATS
    from core.sampling.limits import DEFAULT_INIT_STRENGTH, DEFAULT_SWITCH_AT, DEFAULT_VARIATION_STRENGTH

    p.add_argument("--variation-seed", type=int, default=None, metavar="V",
                   help="make the items variations of the one item --seed draws: item i mixes in the noise of seed V + i")
    p.add_argument("--variation-strength", type=float, default=None, metavar="S",
                   help=f"how much of V's noise, 0-1 (0 = the item itself, 1 = V's own items; default {DEFAULT_VARIATION_STRENGTH:g})")
    p.add_argument("--init", default=None, metavar="FILE",
                   help="edit from this picture (an exported item, or any PNG/JPEG/...: made grey, 28x28, light on black)")
    p.add_argument("--strength", type=float, default=None, metavar="S",
                   help=f"how far the --init picture is noised before it is redrawn, 0-1 (0 = the picture, 1 = fresh "
                        f"noise; default {DEFAULT_INIT_STRENGTH:g})")
    p.add_argument("--switch-to", default=None, metavar="CLASSES",
                   help='ask for these classes (a class or mix, like --class) from --switch-at of the steps on')
    p.add_argument("--switch-at", type=float, default=None, metavar="F",
                   help=f"fraction of the steps made before the switch, 0-1 (default {DEFAULT_SWITCH_AT:g})")
    p.add_argument("--film", nargs="?", const="png", default=None, choices=FILM_FORMATS,
                   help="also write each item's denoising film (x_t and predicted x_0 at every step) as an animated "
                        "png (default, carrying the recipe) or gif")


def _steering_fields(args) -> tuple[dict, str | None]:
    """The request's steering fields from the command line, and how the --init picture was read."""
    from core.classes import parse_class_spec
    from core.images import read_source_image
    from core.sampling.limits import DEFAULT_VARIATION_STRENGTH

    for option, needs, given in (("--variation-strength", "--variation-seed", args.variation_seed),
                                 ("--strength", "--init", args.init), ("--switch-at", "--switch-to", args.switch_to)):
        if getattr(args, option[2:].replace("-", "_")) is not None and given is None:
            raise ValueError(f"{option} needs {needs}")
    fields, how = {}, None
    if args.variation_seed is not None:
        strength = DEFAULT_VARIATION_STRENGTH if args.variation_strength is None else args.variation_strength
        fields |= {"variation_seed": args.variation_seed, "variation_strength": strength, "shared_noise": True}
    if args.init is not None:
        fields["init_image"], how = read_source_image(args.init)
        if args.strength is not None:
            fields["init_strength"] = args.strength
    if args.switch_to is not None:
        fields["switch_to"] = parse_class_spec(args.switch_to)
        if args.switch_at is not None:
            fields["switch_at"] = args.switch_at
    return fields, how


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Train, watch and play with a class-conditional diffusion model of Fashion-MNIST.")
    p.add_argument("--checkpoint", default=None, help="generator checkpoint for the app (default: the shipped model)")
    p.add_argument("--run-dir", default=None, help="open the training monitor on this run directory")
    p.add_argument("--device", default="cpu", help="device for sampling in the app (cpu, cuda, mps, auto)")
    _add_precision_arg(p, "the app's sampling")
    p.add_argument("--export-dir", default="exports", help="where the app's exports go (default ./exports)")
    p.add_argument("--from-png", default=None, help="open the app with the recipe stored in an exported PNG")
    p.add_argument("--data-dir", default=None, help="Fashion-MNIST folder for trainings started from the monitor")
    p.add_argument("--runs-root", default="runs",
                   help="the runs folder: trainings started from the monitor go there, its compare view lists it (default ./runs)")
    from core.model.config import DEFAULT_PRESET, PRESETS, TrainConfig  # plain dataclasses: no torch

    p.add_argument("--train-preset", default=DEFAULT_PRESET, choices=sorted(PRESETS),
                   help=f"model for trainings started from the monitor (default {DEFAULT_PRESET}; fashion-train has every option)")
    p.add_argument("--train-epochs", type=int, default=TrainConfig.epochs,
                   help=f"epochs for trainings started from the monitor (default {TrainConfig.epochs})")
    p.add_argument("--tensorboard", nargs="?", const="", default=None, metavar="DIR",
                   help="trainings started from the monitor also write TensorBoard event files, into tb/ in their run "
                        "directory, or into DIR/RUN_NAME (needs the extra: pip install -e \".[tensorboard]\")")
    sub = p.add_subparsers(dest="command", metavar="{generate,info,evaluate}")

    g = sub.add_parser("generate", help="write PNGs without the app")
    g.add_argument("--class", dest="class_spec", required=True, help='class or mix, e.g. boot or "sneaker:0.7,boot:0.3"')
    from core.sampling.limits import DEFAULT_ITEMS, MAX_EVAL_BATCH, MAX_ITEMS

    g.add_argument("--n", type=int, default=DEFAULT_ITEMS, help=f"number of items, 1-{MAX_ITEMS} (default {DEFAULT_ITEMS})")
    g.add_argument("--seed", type=int, default=0, help="item i uses seed + i (default 0)")
    g.add_argument("--out", default="generated", help="output directory (default ./generated)")
    g.add_argument("--palette", default="grey", help="grey (default, the dataset's look), inverted, magma, viridis, ice")
    g.add_argument("--scale", type=int, default=1, help="upscale factor, nearest-neighbour (default 1 = 28px)")
    g.add_argument("--columns", type=int, default=None, help="grid columns (default min(8, n))")
    g.add_argument("--show", action="store_true",
                   help="also print the grid in this terminal as coloured half blocks (as many columns as fit)")
    from core.classes import DEFAULT_MIX, MIX_DESCRIPTIONS, MIX_METHODS

    g.add_argument("--mix", choices=MIX_METHODS, default=DEFAULT_MIX,
                   help=f"how the classes of a mix combine (default {DEFAULT_MIX}): "
                        + "; ".join(f"{name}: {text}" for name, text in MIX_DESCRIPTIONS.items()))
    _add_sampling_args(g)
    _add_steering_args(g)

    i = sub.add_parser("info", help="print the recipe stored in an exported PNG")
    i.add_argument("png", nargs="+")
    i.add_argument("--json", action="store_true", help="print raw JSON")

    e = sub.add_parser("evaluate", help="score a generator with the shipped classifier")
    e.add_argument("--n-per-class", type=int, default=100, help="items generated per class, 2-6000 (default 100)")
    e.add_argument("--seed", type=int, default=0,
                   help="item i of class c uses seed + c*1000000 + i (default 0); seeds closer than --n-per-class "
                        "share items, so take them that far apart for independent samples")
    e.add_argument("--data-dir", dest="eval_data_dir", default=None, help="Fashion-MNIST folder (for the real test set)")
    e.add_argument("--classifier", default=None, help="classifier checkpoint (default: checkpoints/classifier.pt)")
    e.add_argument("--json-out", default=None, help="also write the result as JSON here")
    e.add_argument("--batch", type=int, default=64, metavar="N",
                   help=f"items sampled at once, 1-{MAX_EVAL_BATCH} (default 64; larger is faster on a GPU, same items)")
    _add_sampling_args(e)
    return p


def load_generator_or_fail(path: str | None, device: str, guide: str | None = None, student: str | None = None):
    from core.checkpoint import open_generator
    from core.device import pick_device

    return open_generator(path, pick_device(device), guide, missing_hint="pass --checkpoint PATH (e.g. runs/NAME/checkpoints/step-*.pt)",
                          student=student)


def cmd_generate(args) -> int:
    from core.classes import ClassSpecError, parse_class_spec
    from core.checkpoint import CheckpointError
    from core.sampling.recipes import check_writable, export_items
    from core.images import MAX_SCALE, PALETTES, ExportError
    from dataclasses import replace

    from core.sampling.limits import DEFAULT_SAMPLER
    from core.sampling.request import SampleRequest, SampleRequestError, check_guide, check_student, prefer_student
    from core.sampling.recipes import export_film
    from core.sampling.samplers import sample, sample_films, sampling_precision

    try:
        weights = parse_class_spec(args.class_spec)
        steering, how = _steering_fields(args)
        asked = SampleRequest(weights, n=args.n, guidance=args.guidance, sampler=args.sampler or DEFAULT_SAMPLER, steps=args.steps,
                              seed=args.seed, guidance_interval=args.guidance_interval, black_level=args.black_level, mix=args.mix,
                              autoguidance=args.autoguidance, precision=args.precision, **steering)
        # a bad value fails before the model loads (what either sampler could draw passes here)
        request = replace(asked).validate() if args.sampler else prefer_student(asked, has_student=True)
        if args.palette not in PALETTES:
            raise ValueError(f"unknown palette {args.palette!r}; choose from {', '.join(PALETTES)}")
        if not 1 <= args.scale <= MAX_SCALE:
            raise ValueError(f"--scale must be 1-{MAX_SCALE}")
        if args.columns is not None and args.columns < 1:
            raise ValueError("--columns must be at least 1")
        out = Path(args.out)
        # a refused file leaves no --out folder behind
        generator = load_generator_or_fail(args.checkpoint, args.device, args.guide, args.student)
        if args.sampler is None:
            request = prefer_student(asked, has_student=generator.student is not None)
        check_guide(generator, request.autoguidance)
        check_student(generator, request.sampler)
        check_writable(out)  # fail before spending time on sampling
        device = next(generator.denoiser.parameters()).device
        request.precision, precision_reason = sampling_precision(generator, request.precision, device)
        images, films = sample_films(generator, request) if args.film else (sample(generator, request), [])
        sides = {"guide": generator.guide_identity(), "student": generator.student_identity()}
        paths = export_items(images, request, out, generator.hash, str(generator.path), args.palette, args.scale, args.columns,
                             **sides)
        films = [export_film(frames, request, i, out, generator.hash, str(generator.path), args.palette, max(4, args.scale),
                             args.film, **sides) for i, frames in enumerate(films)]
    except (ClassSpecError, SampleRequestError, CheckpointError, ExportError, ValueError) as error:
        return _fail(str(error), 1)
    grid = [p for p in paths if p.name.startswith("grid")]
    if args.show:
        show_in_terminal(images, args.palette)
    if how:
        print(f"edited from {args.init}: {how}")
    print(f"wrote {len(paths) - len(grid)} items and {grid[0] if grid else 'no grid'} into {out}"
          + (f", and {len(films)} films ({films[0].name} ...)" if films else "")
          + f" ({request.sampler} {request.resolved_steps()} steps, {precision_reason if precision_reason != 'asked for' else request.precision})")
    return 0


def show_in_terminal(images, palette: str) -> None:
    """The items at true 28px size, two pixels a cell, as many to a row as the terminal is wide."""
    from rich.console import Console
    from rich_pixels import Pixels

    from core.images import make_grid, to_pil

    console = Console()
    columns = max(1, min(images.shape[0], (console.width - 2) // 30))  # make_grid: 28px items, 2px padding
    console.print(Pixels.from_image(to_pil(make_grid(images, columns), palette).convert("RGB")))


def cmd_info(args) -> int:
    from core.images import read_metadata

    status = 0
    for name in args.png:
        try:
            data = read_metadata(name)
        except ValueError as error:
            print(f"{PROG}: error: {error}", file=sys.stderr)
            status = 1
            continue
        if args.json:
            print(json.dumps(data, indent=2, sort_keys=True))
            continue
        print(f"{name}:")
        steering = {"variation_seed": ("variation_seed", "variation_strength"),
                    "init_image": ("init_image", "init_strength"), "switch_to": ("switch_to_classes", "switch_at")}
        active = [key for switch, keys in steering.items() if data.get(switch) is not None for key in keys]
        for key in ("classes", "mix", "guidance", "autoguidance", "guide", "guide_hash", "student", "student_hash",
                    "guidance_interval", "black_level",
                    "sampler", "steps", "seed", "n", "index", "item_seed", "shared_noise", "precision", *active, "film",
                    "checkpoint", "checkpoint_hash", "palette", "scale", "created"):
            if key in data:
                value = "a 28x28 grey picture (in the recipe: --json shows it)" if key == "init_image" else data[key]
                print(f"  {key:18} {value}")
    return status


def cmd_evaluate(args) -> int:
    from core.checkpoint import CheckpointError
    from core.data import DataError
    from core.evaluation.cli import run_evaluation

    try:
        return run_evaluation(args, load_generator_or_fail)
    except (CheckpointError, DataError, ValueError) as error:
        return _fail(str(error), 1)


def cmd_app(args) -> int:
    from tui.app import run_app

    return run_app(args)


HEADLESS = ("generate", "info", "evaluate")


def entry() -> None:
    """The console script: main(), then for the headless subcommands an exit without interpreter
    teardown. Unloading torch costs a quarter of a second or more after every command; every file
    is written and closed (atomically) by then, so nothing is lost by skipping it."""
    code = main(fast_exit=True)
    sys.exit(code)


def main(argv=None, fast_exit: bool = False) -> int:
    args = build_parser().parse_args(argv)
    code = _run(args)
    if fast_exit and args.command in HEADLESS:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _run(args) -> int:
    if args.command in ("generate", "evaluate"):  # the subcommands that sample; "LO:HI"/"all"/None -> interval
        from core.sampling.limits import AUTOGUIDED_GUIDANCE, DEFAULT_GUIDANCE, DEFAULT_GUIDANCE_INTERVAL, DEFAULT_SAMPLER
        from core.sampling.request import SampleRequestError, parse_guidance_interval

        if args.sampler is None and args.command == "evaluate":  # generate picks its sampler once the model is loaded
            args.sampler = DEFAULT_SAMPLER
        if args.guidance is None and (args.autoguidance or args.sampler):  # None: the sampler's own default
            # autoguidance pushes items too: g starts lower with it (core.sampling.limits)
            args.guidance = AUTOGUIDED_GUIDANCE if args.autoguidance else DEFAULT_GUIDANCE[args.sampler]

        try:
            text = args.guidance_interval
            args.guidance_interval = DEFAULT_GUIDANCE_INTERVAL if text is None else parse_guidance_interval(text)
        except SampleRequestError as error:
            return _fail(str(error), 2)
    if args.command is None and args.train_epochs < 1:
        return _fail(f"--train-epochs must be at least 1, not {args.train_epochs}", 2)
    if args.command is None and args.tensorboard is not None:
        from core.training.tensorboard import missing  # no torch

        if problem := missing():
            return _fail(problem, 2)
    try:
        handler = {"generate": cmd_generate, "info": cmd_info, "evaluate": cmd_evaluate}.get(args.command, cmd_app)
        return handler(args)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


if __name__ == "__main__":
    entry()
