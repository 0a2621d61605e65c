"""fashion-tui core: everything that is not UI (never imports Textual).

Four rooms, in the order the maths flows; each imports only the ones before it:
  model/      -> configs, the U-Net, class mixing, the guided denoiser, schedule and loss
  sampling/   -> the request and its limits, the samplers, recipes and export
  training/   -> the trainer, its state, run files and distributed ranks
  evaluation/ -> the classifier, metrics, scoring and its command

Shared by them, at this level:
  classes    -> class names, aliases, mixing specs ("sneaker:0.7,boot:0.3") and mix method names (no torch)
  data       -> Fashion-MNIST IDX files as tensors in [-1, 1]
  files      -> the one atomic writer (no torch)
  device     -> which torch device a name means
  cpu        -> the OpenMP policy every entry point sets before torch loads (no torch)
  images     -> palettes, grids and PNG files that carry their recipe
  checkpoint -> atomic, code-free checkpoint files and the Generator they load into
"""
