"""What a sample request may ask for, and what it gets when it does not say: one table that the
request's checks (core.sampling.request), the app's controls and hints (tui) and the command line's help
all read. No torch here: the app's first frame and `fashion-tui --help` import it.
"""

from __future__ import annotations

SAMPLERS = ("dpm", "ddim", "ddpm")  # the model's own samplers, in the order the app's s steps through
# A few-step student distilled from the model (core.training.distill), where one is loaded beside it
# (NAME-student.pt): deterministic DDIM on its x0 predictions at STUDENT_TIMESTEPS, with the guidance
# an input of the network (one call per item and step). The app's s reaches it after SAMPLERS only
# where one is loaded, and its keys refuse what it did not learn (tui.state.STUDENT_REFUSES).
STUDENT = "student"
REQUEST_SAMPLERS = (*SAMPLERS, STUDENT)  # every sampler a request may name
# The model's own default, and a request's that names none (an old recipe's): what the app and
# `generate` draw with when no sampler is asked for is the student where one is loaded and can draw
# the request, else this (core.sampling.request.prefer_student).
DEFAULT_SAMPLER = "dpm"
DEFAULT_STEPS = {"dpm": 20, "ddim": 50, "ddpm": 250, STUDENT: 2}
# Guidance where each sampler matches DDIM 50 at g=2 on the shipped model: DPM-Solver++ follows the
# guided ODE more closely than DDIM, so the same g pushes items further (at g=2 its Frechet distance
# is 1.1x DDIM 50's); at 1.75 its accuracy, worst class and distance are DDIM 50's within noise
# (bench/quality_table.py; README, Quality).
DEFAULT_GUIDANCE = {"dpm": 1.75, "ddim": 2.0, "ddpm": 2.0, STUDENT: 1.75}  # the student's: the teacher's DPM-Solver++ default
GUIDANCE_RANGE = (0.0, 20.0)
STUDENT_GUIDANCE_RANGE = (0.0, 4.0)  # the guidance a student learns (its teacher's pairs draw g from it)
AUTOGUIDANCE_RANGE = (0.0, 10.0)  # w of autoguidance, beside g, where a guide model is loaded
# Autoguidance is off by default. At the default guidance its push only moves items along
# guidance's own trade-off (10,000 items of the shipped model: g=1.75 with w=0.5 reads 97.9% at a
# Frechet distance of 0.370, g=1.5 alone 98.2% at 0.360); at low guidance it brings them closer
# to real ones than guidance alone gets (docs/quality.md). AUTOGUIDANCE_ON is what the app's a key
# and a bare `--autoguidance` turn on, and guidance left at its default then starts at
# AUTOGUIDED_GUIDANCE.
AUTOGUIDANCE_ON = 0.5
AUTOGUIDED_GUIDANCE = 1.0
DEFAULT_ITEMS = 16
MAX_ITEMS = 64  # items one request may ask for: a screenful in the app and `generate`
MAX_EVAL_BATCH = 1000  # items `evaluate` may sample in one batch (each keeps its own seed, so only speed changes)
MIN_STEPS, MAX_STEPS = 2, 1000
# The student's timesteps for each number of steps (T = 1000; the noisiest first, then to 0): one
# table that its training (core.training.distill) and its sampler (core.sampling.student) both read.
STUDENT_TIMESTEPS = {1: (999,), 2: (999, 499), 3: (999, 666, 333), 4: (999, 749, 499, 249)}
STUDENT_STEPS = (min(STUDENT_TIMESTEPS), max(STUDENT_TIMESTEPS))
MAX_SEED = 2**31 - 1
# Guidance acts at steps 21 <= t <= 400 only and the plain conditional model runs elsewhere
# (guidance in a limited interval, Kynkaenniemi et al. 2024). The noisiest 60% of the trajectory
# unguided keeps shapes varied; DDIM 50's last call (t=20) and DDPM's t <= 20 (noise std <= 0.08)
# unguided stop guidance from overdrawing the final pixels. On the shipped model at g=2, DDIM 50,
# 300 items per class: Frechet distance 0.46-0.47 against 0.81-0.83 for t <= 500, for 0.6-0.7
# points of accuracy (98.3-98.7%, worst class 94-96%): see docs/experiments.md. None = every step.
DEFAULT_GUIDANCE_INTERVAL = (21, 400)
# Fashion-MNIST backgrounds are exactly black (half of all its pixels are 0, only 3% are 1-8/255);
# the model's final x_0 leaves a faint haze of 1-8/255 there. Final pixels at or below this level
# (0-255 scale) are set to black; 0 keeps the raw output.
DEFAULT_BLACK_LEVEL = 4
MAX_BLACK_LEVEL = 32
# Steering (core.sampling.steering): every strength and switch point is a fraction 0-1, and each is
# off until asked for. A variation's strength mixes in another seed's noise (0 = the parent item,
# 1 = an unrelated one); an edit's strength is how far into the noise the source picture goes
# before it is denoised again (t0 = strength * T: 0 = the picture, 1 = nearly fresh noise); a class
# switch asks for its second mix from this fraction of the steps on.
DEFAULT_VARIATION_STRENGTH = 0.2  # visibly other details, the same item (docs/generating.md, Steering)
DEFAULT_INIT_STRENGTH = 0.6  # keeps the source's silhouette while the classes redraw it (docs/generating.md)
DEFAULT_SWITCH_AT = 0.4
FRACTION_STEP = 0.05  # the app's left/right on the vary, edit and switch rows


def step_range(sampler: str) -> tuple[int, int]:
    """The steps a request of `sampler` may ask for: (lowest, highest)."""
    return STUDENT_STEPS if sampler == STUDENT else (MIN_STEPS, MAX_STEPS)


def describe_interval(interval) -> str:
    """'every step' for None, else the steps it guides: 't <= 500' or '21 <= t <= 400'."""
    if interval is None:
        return "every step"
    lo, hi = interval
    return f"t <= {hi}" if lo == 0 else f"{lo} <= t <= {hi}"
