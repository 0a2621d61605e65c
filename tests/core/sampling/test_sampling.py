"""The samplers on the test model: steps, seeds, guidance and its interval, DPM-Solver++'s orders, DDPM's noise."""

import dataclasses

import pytest
import torch

from core.checkpoint import load_generator
from core.sampling.limits import DEFAULT_BLACK_LEVEL, DEFAULT_GUIDANCE_INTERVAL, MAX_EVAL_BATCH
from core.sampling.request import SampleRequest, SampleRequestError, blend_weights, parse_guidance_interval
from core.sampling.samplers import eval_steps_for, finish, make_sampler, sample, sample_steps
from core.images import to_uint8

BOOT = [0.0] * 9 + [1.0]
SNEAKER_BOOT = [0.0] * 7 + [0.6, 0.0, 0.4]


@pytest.fixture(scope="module")
def generator(trained):
    return dataclasses.replace(trained, guide=None)


@pytest.mark.parametrize("sampler, steps, calls", [("ddpm", 10, 10), ("ddim", 8, 8), ("ddpm", 250, 250), ("ddim", 50, 50)])
def test_eval_steps(sampler, steps, calls):
    eval_steps = eval_steps_for(sampler, steps, 1000)
    assert eval_steps[0] == 0 and eval_steps[-1] == 999  # DDPM: t=0 included, so no noise is added last
    assert len(eval_steps) == (calls if sampler == "ddpm" else calls + 1)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_yields_every_step_and_final_images(generator, sampler):
    steps = list(sample_steps(generator, SampleRequest(BOOT, n=3, sampler=sampler, steps=6, seed=1)))
    assert [s.index for s in steps] == list(range(1, 7)) and steps[-1].done and not steps[0].done
    assert [s.t for s in steps] == sorted((s.t for s in steps), reverse=True)
    final = steps[-1].x
    assert final.shape == (3, 1, 28, 28) and final.min() >= -1 and final.max() <= 1


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_same_seed_same_pixels_and_global_rng_untouched(generator, sampler):
    torch.manual_seed(5)
    state = torch.get_rng_state()
    a = sample(generator, SampleRequest(BOOT, n=2, sampler=sampler, steps=5, seed=42))
    assert torch.equal(torch.get_rng_state(), state)
    b = sample(generator, SampleRequest(BOOT, n=2, sampler=sampler, steps=5, seed=42))
    c = sample(generator, SampleRequest(BOOT, n=2, sampler=sampler, steps=5, seed=43))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.allclose(a[1], c[0], atol=1e-5)  # item i draws from seed + i


def test_ddim_is_deterministic_given_x_T_and_ddpm_adds_noise(generator):
    # DDIM (eta=0) uses noise only for x_T; DDPM draws fresh noise every step.
    ddim = list(sample_steps(generator, SampleRequest(BOOT, n=1, sampler="ddim", steps=4, seed=0)))
    ddpm = list(sample_steps(generator, SampleRequest(BOOT, n=1, sampler="ddpm", steps=4, seed=0)))
    assert not torch.equal(ddim[-1].x, ddpm[-1].x)


def test_ddpm_draws_each_steps_noise_from_the_items_own_seed(generator):
    """DDPM against diffusion_labs' DDPModule driven by hand: x_T, then one fresh draw per step, item i
    from seed + i; with the steps' draws zeroed instead, the items come out otherwise."""
    from torchmultimodal.diffusion_labs.samplers.ddpm import DDPModule

    from core.model.diffusion import make_predictor, make_schedule

    request = SampleRequest(SNEAKER_BOOT, n=2, sampler="ddpm", steps=5, seed=7, precision="fp32").validate()
    config = generator.diffusion_config
    view = generator.denoiser.with_guidance(request.guidance, request.guidance_interval, request.mix).eval()
    cond = {"class_weights": request.weight_matrix()}

    def by_hand(step_noise: bool) -> torch.Tensor:
        items = [torch.Generator().manual_seed(request.seed + i) for i in range(request.n)]
        schedule = make_schedule(config)
        draw = lambda like: torch.stack([torch.randn(like.shape[1:], generator=g) for g in items])  # (n, 1, 28, 28)
        schedule.noise_source = draw if step_noise else torch.zeros_like
        ddpm = DDPModule(view, schedule, make_predictor(config, schedule, clamp=True),
                         eval_steps=eval_steps_for("ddpm", 5, config.steps), progress_bar=False).eval()
        x = draw(torch.empty(request.n, 1, 28, 28))  # x_T
        with torch.no_grad():
            for x in ddpm.generator(x, cond):
                pass
        return finish(x, request.black_level)

    images = sample(generator, request)
    assert torch.allclose(images, by_hand(step_noise=True), atol=1e-5)
    assert (images - by_hand(step_noise=False)).abs().mean() > 0.05  # the steps' noise is a visible part of the items


def test_stopping_between_steps(generator):
    iterator = sample_steps(generator, SampleRequest(BOOT, n=1, sampler="ddpm", steps=50))
    first = next(iterator)
    iterator.close()
    assert first.index == 1 and first.total == 50
    assert generator.denoiser.guidance == generator.diffusion_config.guidance  # restored


def test_guidance_changes_pixels(generator):
    a = sample(generator, SampleRequest(BOOT, n=1, steps=4, guidance=0.0))
    b = sample(generator, SampleRequest(BOOT, n=1, steps=4, guidance=5.0))
    assert not torch.allclose(a, b)


def test_guidance_interval_selects_the_steps_that_are_guided(generator):
    def run(guidance, interval):
        return sample(generator, SampleRequest(BOOT, n=2, steps=4, guidance=guidance, guidance_interval=interval, seed=3))

    assert SampleRequest(BOOT).guidance_interval == DEFAULT_GUIDANCE_INTERVAL == (21, 400)
    classic, unguided = run(5.0, None), run(5.0, (0, 0))  # DDIM 4 evaluates t = 999, 749, 500, 250: none is t=0
    assert torch.equal(run(5.0, (0, 999)), classic)
    assert torch.equal(unguided, run(0.0, None))
    partial = run(5.0, (0, 600))  # guides t = 500 and 250 only
    assert not torch.allclose(partial, classic) and not torch.allclose(partial, unguided)


def test_guidance_interval_per_item_when_a_batch_mixes_steps(generator):
    view = generator.denoiser.with_guidance(5.0, (0, 600)).eval()
    guided, plain = generator.denoiser.with_guidance(5.0).eval(), generator.denoiser.with_guidance(0.0).eval()
    x = torch.randn(2, 1, 28, 28)
    t = torch.tensor([100, 900])
    cond = {"class_weights": torch.tensor([BOOT, BOOT])}
    with torch.no_grad():
        mixed = view(x, t, cond)
        want_first, want_second = guided(x[:1], t[:1], {"class_weights": cond["class_weights"][:1]}), plain(x[1:], t[1:], {"class_weights": cond["class_weights"][1:]})
    assert torch.allclose(mixed.prediction[0], want_first.prediction[0], atol=1e-5)
    assert torch.allclose(mixed.prediction[1], want_second.prediction[0], atol=1e-5)
    assert generator.denoiser.guidance_interval is None  # the shared model is untouched


@pytest.mark.parametrize("interval", [(700, 600), (0, 1000), (-1, 5), ("0", 600), (0, 600.0), (True, 600), (1, 2, 3), 7])
def test_bad_guidance_interval_is_refused(interval):
    with pytest.raises(SampleRequestError, match="guidance interval"):
        SampleRequest(BOOT, guidance_interval=interval).validate()


def test_parse_guidance_interval():
    assert parse_guidance_interval("0:600") == (0, 600) and parse_guidance_interval(" 100:999 ") == (100, 999)
    assert parse_guidance_interval("all") is None
    for text in ("600", "a:b", "0:600:1", "600:0", "0:1000", ""):
        with pytest.raises(SampleRequestError, match="guidance interval"):
            parse_guidance_interval(text)


def test_finish_sets_near_black_pixels_to_black():
    levels = torch.arange(0, 256, dtype=torch.float32)  # every 8-bit value, as [-1, 1] floats
    x = (levels / 127.5 - 1).reshape(1, 1, 16, 16)
    x[0, 0, 0, :2] = torch.tensor([-3.0, 2.0])  # out of range: clamped
    for level in (0, 4, 32):
        pixels = to_uint8(finish(x, level)).flatten().long()
        want = levels.long().clone()
        want[:2] = torch.tensor([0, 255])
        want[want <= level] = 0
        assert torch.equal(pixels, want), level


def test_black_level_applies_to_the_final_images_only(generator):
    raw = list(sample_steps(generator, SampleRequest(BOOT, n=2, steps=3, black_level=0, seed=4)))
    clean = list(sample_steps(generator, SampleRequest(BOOT, n=2, steps=3, seed=4)))
    assert SampleRequest(BOOT).black_level == DEFAULT_BLACK_LEVEL == 4
    assert all(torch.equal(a.x, b.x) for a, b in zip(raw[:-1], clean[:-1]))  # previews untouched
    assert torch.equal(clean[-1].x, finish(raw[-1].x, 4))
    pixels = to_uint8(clean[-1].x)
    assert not ((pixels >= 1) & (pixels <= 4)).any()


@pytest.mark.parametrize("level", [-1, 33, 2.0, True, "4"])
def test_bad_black_level_is_refused(level):
    with pytest.raises(SampleRequestError, match="black level must be a whole number 0-32"):
        SampleRequest(BOOT, black_level=level).validate()


def test_blend_strip_shares_noise(generator):
    rows = blend_weights(7, 9, 5)
    assert rows[0][7] == 1.0 and rows[-1][9] == 1.0 and rows[2][7] == pytest.approx(0.5)
    request = SampleRequest(rows[0], n=5, steps=3, shared_noise=True, per_item_weights=rows)
    images = sample(generator, request)
    assert images.shape == (5, 1, 28, 28)
    same_class = sample(generator, SampleRequest(BOOT, n=3, steps=3, shared_noise=True))
    assert torch.allclose(same_class[0], same_class[2], atol=1e-5)


def test_evaluation_batches_pass_the_item_cap_and_keep_each_items_pixels(generator):
    big = SampleRequest(BOOT, n=65, steps=3, seed=5)
    with pytest.raises(SampleRequestError, match="number of items must be 1-64"):
        sample(generator, big)  # the app's cap
    images = sample(generator, big, max_items=MAX_EVAL_BATCH)
    assert images.shape == (65, 1, 28, 28)
    alone = sample(generator, SampleRequest(BOOT, n=1, steps=3, seed=5 + 64))  # item 64 has seed + 64
    assert torch.allclose(images[64], alone[0], atol=1e-5)
    assert not torch.allclose(images[63], alone[0], atol=1e-3)


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(n=0), "number of items"), (dict(n=65), "number of items"), (dict(n=True), "number of items"),
    (dict(guidance=-0.1), "guidance"), (dict(guidance=20.5), "guidance"), (dict(guidance=float("nan")), "guidance"),
    (dict(steps=1), "steps"), (dict(steps=1001), "steps"), (dict(sampler="euler"), "sampler"),
    (dict(seed=-1), "seed"), (dict(seed="7"), "seed"),
    (dict(class_weights=[0.0] * 10), "sum to zero"), (dict(class_weights=[1.0] * 3), "10 class weights"),
    (dict(class_weights=[float("nan")] + [1.0] * 9), "finite"),
])
def test_bad_requests_one_line(kwargs, fragment):
    fields = dict(class_weights=BOOT) | kwargs
    with pytest.raises(SampleRequestError) as info:
        SampleRequest(**fields).validate()
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_validate_renormalises():
    request = SampleRequest([0, 0, 0, 0, 0, 0, 0, 3, 0, 1]).validate()
    assert request.class_weights[7] == pytest.approx(0.75)


def test_concurrent_samplers_keep_their_own_guidance(trained_checkpoint):
    generator = load_generator(trained_checkpoint)  # a private copy: its shared default guidance is checked below
    low, high = SampleRequest(BOOT, n=1, steps=4, guidance=0.0), SampleRequest(BOOT, n=1, steps=4, guidance=5.0)
    expected_low, expected_high = sample(generator, low), sample(generator, high)
    a, b = sample_steps(generator, low), sample_steps(generator, high)
    for step_a, step_b in zip(a, b):  # interleaved, as two app workers would run
        last_a, last_b = step_a, step_b
    assert torch.equal(last_a.x, expected_low) and torch.equal(last_b.x, expected_high)
    assert generator.denoiser.guidance == generator.diffusion_config.guidance
    # paused iterators must not leave their inference mode / autocast on in the caller's thread
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
    assert not torch.is_autocast_enabled("cpu")


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_sampler_step_tables_live_on_the_sampling_device(generator, sampler):
    # DDPModule indexes its step tables with the timestep tensor, which lives on the sampling
    # device; CPU tables made DDPM sampling fail on a GPU. "meta" stands in for a device here.
    noise = lambda shape, dtype=torch.float32: torch.zeros(shape, dtype=dtype)
    module, timesteps = make_sampler(generator.denoiser, generator.diffusion_config, sampler, 6, noise, torch.device("meta"))
    buffers = dict(module.named_buffers(recurse=False))
    assert {"eval_steps", "eval_steps_map"} <= set(buffers) if sampler == "ddpm" else "eval_steps" in buffers
    assert all(b.device.type == "meta" for b in buffers.values())
    assert len(timesteps) == 6 and not module.training


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_sampling_on_cuda_matches_the_request(trained_checkpoint, sampler):
    gpu = load_generator(trained_checkpoint, "cuda")
    images = sample(gpu, SampleRequest(BOOT, n=3, sampler=sampler, steps=5, seed=2))
    assert images.shape == (3, 1, 28, 28) and images.device.type == "cpu"
    assert bool(torch.isfinite(images).all()) and images.min() >= -1 and images.max() <= 1


def test_dpm_solver_is_ddim_at_first_order_and_differs_once_second_order(generator):
    def run(sampler, steps, **kw):
        return sample(generator, SampleRequest(BOOT, n=2, sampler=sampler, steps=steps, seed=6, **kw))

    # two steps: the first has no history and the last of a short run is first order too
    assert torch.allclose(run("dpm", 2), run("ddim", 2), atol=1e-5)
    assert not torch.allclose(run("dpm", 6), run("ddim", 6), atol=1e-4)
    default = SampleRequest(BOOT).validate()
    assert (default.sampler, default.resolved_steps(), default.guidance) == ("dpm", 20, 1.75)
    ddim = SampleRequest(BOOT, sampler="ddim").validate()
    assert (ddim.resolved_steps(), ddim.guidance) == (50, 2.0)  # each sampler has its own default guidance


def test_dpm_solver_second_order_step_matches_the_formula(generator):
    from core.model.diffusion import make_predictor, make_schedule
    from core.sampling.dpm_solver import DPMSolverModule

    config = generator.diffusion_config
    schedule = make_schedule(config)
    predictor = make_predictor(config, schedule, clamp=True)
    denoiser = generator.denoiser.with_guidance(0.0).eval()
    steps = torch.tensor([0, 300, 600, 999])
    solver = DPMSolverModule(denoiser, schedule, predictor, steps)
    x = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    cond = {"class_weights": torch.tensor([BOOT])}
    with torch.no_grad():
        got = list(solver.generator(x, cond))
        abar = schedule.alphas_cumprod.double()
        alpha, sigma = abar.sqrt(), (1 - abar).sqrt()
        lam = lambda t: torch.log(alpha[t] / sigma[t])

        def x0(x_t, t):
            return predictor.predict_x0(denoiser(x_t, torch.tensor([t]), cond).prediction, x_t, torch.tensor([t])).double()

        first = x0(x, 999)
        h1 = lam(600) - lam(999)
        x1 = sigma[600] / sigma[999] * x.double() - alpha[600] * torch.expm1(-h1) * first
        second = x0(x1.float(), 600)
        h2 = lam(300) - lam(600)
        r = h1 / h2
        d = (1 + 1 / (2 * r)) * second - 1 / (2 * r) * first
        x2 = sigma[300] / sigma[600] * x1 - alpha[300] * torch.expm1(-h2) * d
    assert len(got) == 3
    assert torch.allclose(got[0].double(), x1, atol=1e-4) and torch.allclose(got[1].double(), x2, atol=1e-4)


def test_dpm_solver_restarts_at_first_order_across_a_guidance_edge(generator):
    """DPM-Solver++ 6 steps visits t = 999, 832, 666, 500, 333, 166; guided at 21 <= t <= 400, the step
    from 333 follows the edge (500 unguided, 333 guided), so it must be first order: extrapolating
    across the jump in x0 overshoots. The step before it, inside one model, is second order."""
    from core.sampling.samplers import _same_model

    view = generator.denoiser.with_guidance(2.0, (21, 400))
    same = _same_model(view)
    assert same(999, 600) and same(400, 21) and not same(600, 400) and not same(21, 20)
    assert _same_model(generator.denoiser.with_guidance(0.0, (21, 400)))(600, 400)  # no guidance: one model
    assert _same_model(generator.denoiser.with_guidance(2.0, None))(600, 400)

    from core.model.diffusion import make_predictor, make_schedule

    config = generator.diffusion_config
    draw = lambda shape, dtype=torch.float32: torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
    solver, timesteps = make_sampler(view.eval(), config, "dpm", 6, draw, torch.device("cpu"))
    assert timesteps == [999, 832, 666, 500, 333, 166]
    cond = {"class_weights": torch.tensor([BOOT])}
    x_T = draw((1, 1, 28, 28))
    with torch.no_grad():
        xs = dict(zip(timesteps[1:] + [0], solver.generator(x_T, cond)))  # t -> x_t after the step into t
    schedule = make_schedule(config)
    predictor = make_predictor(config, schedule, clamp=True)
    abar = schedule.alphas_cumprod.double()
    alpha, sigma = abar.sqrt(), (1 - abar).sqrt()
    lam = lambda t: torch.log(alpha[t] / sigma[t])

    def x0(x_t, t):
        with torch.no_grad():
            return predictor.predict_x0(view(x_t, torch.tensor([t]), cond).prediction, x_t, torch.tensor([t])).double()

    def step(x_s, s, t, d):
        return sigma[t] / sigma[s] * x_s.double() - alpha[t] * torch.expm1(-(lam(t) - lam(s))) * d

    def second_order(s_prev, s, t):
        r = (lam(s) - lam(s_prev)) / (lam(t) - lam(s))
        d = (1 + 1 / (2 * r)) * x0(xs[s], s) - 1 / (2 * r) * x0(xs[s_prev], s_prev)
        return step(xs[s], s, t, d)

    first = step(xs[333], 333, 166, x0(xs[333], 333))
    assert torch.allclose(xs[166].double(), first, atol=1e-4)  # the step after the edge: first order
    assert not torch.allclose(first, second_order(500, 333, 166), atol=1e-2)  # and the orders differ there
    assert torch.allclose(xs[500].double(), second_order(832, 666, 500), atol=1e-4)  # inside one model: second order
