"""fashion-tui core: everything that is not UI (never imports Textual).

Modules in the order the maths flows:
  classes    -> class names, aliases and mixing specs ("sneaker:0.7,boot:0.3")
  data       -> Fashion-MNIST IDX files as tensors in [-1, 1]
  config     -> typed dataclass configs saved inside every checkpoint
  model      -> U-Net + class encoder + classifier-free guidance wrapper
  diffusion  -> schedule, predictor, hybrid loss (torchmultimodal diffusion_labs)
  sampling   -> DDPM / DDIM loops that yield each step
  checkpoint -> atomic, code-free checkpoint files
  trainer    -> the training loop (CLI, TUI and tests drive the same code)
  images     -> palettes, grids and PNG export with recipe metadata
  evaluate   -> classifier-based quality metrics
"""
