"""`fashion-tui evaluate`: sample every class from a generator and score it with the shipped classifier."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from ..files import atomic_write_bytes
from ..classes import NUM_CLASSES
from ..data import SPLIT_SIZES, load_split
from .metrics import FLOOR_DRAWS, real_floors
from .classifier import EvaluationError, load_classifier
from .scoring import evaluate_generator, format_table
from ..sampling.limits import DEFAULT_BLACK_LEVEL, DEFAULT_GUIDANCE_INTERVAL, MAX_EVAL_BATCH, MAX_SEED, STUDENT
from ..sampling.request import SampleRequest, SampleRequestError, check_guide, check_student
from ..sampling.samplers import sample, sampling_precision

CLASS_SEED_STRIDE = 1_000_000  # item i of class c uses seed + c * CLASS_SEED_STRIDE + i
# The floor draws as many real training images of each class as are generated: at most all of them.
MAX_N_PER_CLASS = SPLIT_SIZES["train"] // NUM_CLASSES


def make_sample_fn(generator, guidance: float, sampler: str, steps: int | None, seed: int, batch: int,
                   guidance_interval: tuple[int, int] | None = DEFAULT_GUIDANCE_INTERVAL, black_level: int = DEFAULT_BLACK_LEVEL,
                   autoguidance: float = 0.0, precision: str = "auto"):
    """sample_fn(class, n) for evaluate_generator: batches of <= MAX_EVAL_BATCH items, seeds that never
    overlap. Item i of a class has its own noise generator, so the batch size changes only speed."""
    batch = max(1, min(batch, MAX_EVAL_BATCH))

    def sample_fn(class_index: int, n: int) -> torch.Tensor:
        weights = [1.0 if i == class_index else 0.0 for i in range(NUM_CLASSES)]
        chunks = []
        for start in range(0, n, batch):
            size = min(batch, n - start)
            request = SampleRequest(weights, n=size, guidance=guidance, sampler=sampler, steps=steps,
                                    seed=seed + class_index * CLASS_SEED_STRIDE + start, guidance_interval=guidance_interval,
                                    black_level=black_level, autoguidance=autoguidance, precision=precision)
            chunks.append(sample(generator, request, max_items=MAX_EVAL_BATCH))
        return torch.cat(chunks)

    return sample_fn


def check_request(n_per_class: int, guidance: float, sampler: str, steps: int | None, seed: int,
                  guidance_interval, black_level: int, autoguidance: float = 0.0, precision: str = "auto") -> None:
    """Refuse, in one line, anything that would stop the evaluation part-way: the sampling settings,
    and item seeds (seed + c * CLASS_SEED_STRIDE + i) that would pass MAX_SEED or reach the next class."""
    SampleRequest([1.0] + [0.0] * 9, guidance=guidance, sampler=sampler, steps=steps, seed=seed,
                  guidance_interval=guidance_interval, black_level=black_level, autoguidance=autoguidance,
                  precision=precision).validate()
    if not 1 <= n_per_class <= CLASS_SEED_STRIDE:
        raise SampleRequestError(f"items per class must be 1-{CLASS_SEED_STRIDE}, not {n_per_class}")
    highest = MAX_SEED - (NUM_CLASSES - 1) * CLASS_SEED_STRIDE - (n_per_class - 1)
    if seed > highest:
        raise SampleRequestError(f"seed must be at most {highest} for {n_per_class} items per class "
                                 f"(class c's items use seed + c*{CLASS_SEED_STRIDE} + i), not {seed}")


def evaluate_checkpoint(generator, classifier, data_dir, n_per_class: int, guidance: float, sampler: str,
                        steps: int | None, seed: int = 0, batch: int = 64, floor: float | None = None, progress=None,
                        guidance_interval: tuple[int, int] | None = DEFAULT_GUIDANCE_INTERVAL,
                        black_level: int = DEFAULT_BLACK_LEVEL, floor_infinity: float | None = None,
                        autoguidance: float = 0.0, precision: str = "auto") -> dict:
    check_request(n_per_class, guidance, sampler, steps, seed, guidance_interval, black_level, autoguidance, precision)
    precision = sampling_precision(generator, precision, next(generator.denoiser.parameters()).device)[0]
    check_guide(generator, autoguidance)
    check_student(generator, sampler)
    test = load_split("test", data_dir)
    if floor is None:
        # like-for-like: as many real train images of each class as generated ones (the distance is biased by sample size)
        floor, floor_infinity = real_floors(classifier, data_dir, n_per_class)
    start = time.perf_counter()
    result = evaluate_generator(make_sample_fn(generator, guidance, sampler, steps, seed, batch, guidance_interval, black_level,
                                               autoguidance, precision),
                                classifier,
                                test.as_float(), test.labels, n_per_class, floor=floor, progress=progress,
                                floor_infinity=floor_infinity)
    seconds = time.perf_counter() - start
    result.update({
        "checkpoint": str(generator.path), "checkpoint_hash": generator.hash, "guidance": guidance, "sampler": sampler,
        "autoguidance": autoguidance, "precision": precision, "guide_hash": generator.guide.hash if autoguidance else None,
        "student_hash": generator.student.hash if sampler == STUDENT else None,
        "guidance_interval": list(guidance_interval) if guidance_interval is not None else None, "black_level": black_level,
        "steps": steps if steps is not None else SampleRequest([1.0] + [0.0] * 9, sampler=sampler).resolved_steps(),
        "seed": seed, "seconds": seconds, "seconds_per_item": seconds / (n_per_class * NUM_CLASSES),
        "floor_n_per_class": n_per_class, "floor_draws": FLOOR_DRAWS,
    })
    return result


def _describe_interval(interval) -> str:
    return "at every step" if interval is None else f"at steps {interval[0]}-{interval[1]}"


def check_json_out(path: Path) -> None:
    """Refuse an unusable --json-out before minutes of sampling, not after."""
    if path.is_dir():
        raise ValueError(f"cannot write {path}: it is a directory")
    folder = path.parent
    if not folder.is_dir():
        raise ValueError(f"cannot write {path}: {folder} is not an existing directory")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"cannot write {path}: {folder} is not writable")


def run_evaluation(args, load_generator_fn) -> int:
    if args.n_per_class < 2:
        raise ValueError("--n-per-class must be at least 2")
    if args.n_per_class > MAX_N_PER_CLASS:
        raise ValueError(f"--n-per-class must be at most {MAX_N_PER_CLASS}: the floor beside the distance draws as many "
                         f"real training images of each class, and each has {MAX_N_PER_CLASS}")
    if not 1 <= args.batch <= MAX_EVAL_BATCH:
        raise ValueError(f"--batch must be 1-{MAX_EVAL_BATCH}, not {args.batch}")
    # every cheap check before the expensive work (loading data, the real-image floor, sampling)
    check_request(args.n_per_class, args.guidance, args.sampler, args.steps, args.seed, args.guidance_interval,
                  args.black_level, args.autoguidance, args.precision)
    if args.json_out:
        check_json_out(Path(args.json_out))
    try:
        classifier = load_classifier(args.classifier)
    except EvaluationError as error:
        raise ValueError(str(error)) from None
    generator = load_generator_fn(args.checkpoint, args.device, args.guide, args.student)

    def progress(done, total):
        print(f"\rsampling class {done}/{total}", end="", flush=True)

    result = evaluate_checkpoint(generator, classifier, args.eval_data_dir, args.n_per_class, args.guidance,
                                 args.sampler, args.steps, args.seed, args.batch, progress=progress,
                                 guidance_interval=args.guidance_interval, black_level=args.black_level,
                                 autoguidance=args.autoguidance, precision=args.precision)
    print()
    student = f" its student {generator.student.path} ({result['student_hash']})," if result["student_hash"] else ""
    print(f"checkpoint {result['checkpoint']} ({result['checkpoint_hash']}),{student} {args.sampler.upper()} {result['steps']} steps, "
          f"guidance {args.guidance:g} ({_describe_interval(args.guidance_interval)}), autoguidance {args.autoguidance:g}, {result['precision']}, black level {args.black_level}, {args.n_per_class} items per class, {result['seconds']:.0f} s")
    print(format_table(result))
    if args.json_out:
        try:
            atomic_write_bytes((json.dumps(result, indent=2) + "\n").encode(), Path(args.json_out))
        except OSError as error:
            raise ValueError(f"cannot write {args.json_out}: {error.strerror or error} (the table above is the result)") from None
        print(f"wrote {args.json_out}")
    return 0
