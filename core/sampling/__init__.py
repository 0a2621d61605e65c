"""Sampling: from a request to pixels, and back from a PNG's recipe to the request.

  limits     -> what a request may ask for and its defaults (no torch: the app's first frame reads it)
  request    -> the sample request and its checks
  dpm_solver -> DPM-Solver++(2M), the default sampler
  samplers   -> the DPM-Solver++ / DDIM / DDPM loops that yield each step
  recipes    -> a request as a PNG's recipe and back; exporting items
"""
