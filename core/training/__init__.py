"""Training: the loop and everything it writes.

  rundir      -> the run directory's layout, read by the monitor too (no torch)
  distributed -> the torch.distributed process group and its collectives
  state       -> the trainer's state in a checkpoint: resume, restore, write
  runfiles    -> run.json, metrics.jsonl and the per-epoch sample grid
  ranks       -> the trainer's side of a distributed run
  trainer     -> the training loop (CLI, TUI and tests drive the same code)
  posthoc_ema -> power-function EMA profiles, their snapshots, and an EMA of any length rebuilt from them
  export      -> `python -m core.training.export`: a sampling checkpoint from a run's EMA or post-hoc EMA
  pairs       -> a student's training pairs: its teacher's items from seeded noise, in shards
  distill     -> a few-step student distilled from a generator on those pairs (`fashion-train distill`)
"""
