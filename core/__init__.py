"""fashion-tui core: everything that is not UI (never imports Textual).

Modules in the order the maths flows:
  limits     -> what a sample request may ask for and its defaults (no torch)
  classes    -> class names, aliases, mixing specs ("sneaker:0.7,boot:0.3") and mix method names
  data       -> Fashion-MNIST IDX files as tensors in [-1, 1]
  config     -> typed dataclass configs saved inside every checkpoint
  model      -> U-Net + class encoder + classifier-free guidance wrapper
  mixing     -> how a mix of classes becomes the prediction (average, norm, compose)
  diffusion  -> schedule, predictor, hybrid loss (torchmultimodal diffusion_labs)
  dpm_solver -> DPM-Solver++(2M), the default sampler
  sampling   -> the sample request and the DPM-Solver++ / DDIM / DDPM loops that yield each step
  files      -> the one atomic writer (no torch)
  rundir     -> the run directory's layout (no torch)
  device     -> which torch device a name means
  checkpoint -> atomic, code-free checkpoint files
  cpu        -> the OpenMP policy every entry point sets before torch loads
  trainer    -> the training loop (CLI, TUI and tests drive the same code)
  images     -> palettes, grids and PNG export with recipe metadata
  classifier -> the evaluator's CNN, its file and its training
  metrics    -> accuracy, Frechet distance, diversity, real floors
  evaluate   -> scoring a generator with them
"""
