"""Evaluation: how good a generator is, read by a classifier trained on real items.

  classifier -> the evaluator's CNN, its file and its training (`python -m core.evaluation`)
  metrics    -> accuracy, Frechet distance, diversity, the real-vs-real floors
  scoring    -> sampling every class and scoring it with them; the table
  cli        -> `fashion-tui evaluate`
"""
