"""The model: what one denoising step computes.

  config     -> typed dataclass configs (and the presets) saved inside every checkpoint
  unet       -> the conditional U-Net that sees time and class embeddings in every block
  mixing     -> how a mix of classes becomes the prediction (average, norm, compose)
  denoiser   -> the nn.Embedding class encoder and classifier-free guidance around the U-Net
  diffusion  -> schedule, predictor and hybrid loss (torchmultimodal diffusion_labs)
"""
