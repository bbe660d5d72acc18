"""Modelling stage: features, splits, training, the model registry, prediction and serving.

Modules:

- data: ``snapshots`` (the stored snapshots as a panel), ``features`` (feature
  engineering), ``target`` (the anchored forest and the HAR baseline), ``splits``
  (time-series splits), ``metrics`` (R², skill), ``intervals`` (conformal bands);
- training, one module per stage of the nightly cycle run by ``train``: ``data``
  (check and stage the panel), ``challenger`` (tune and score the forest; ``candidates``
  holds the grids, pipelines and rival algorithms), ``compare`` (decide against the
  champion), ``publish`` (record the run); ``staging`` passes files between them;
- registry: ``registry`` (publish, verified load, reconcile, rollback) over ``versions``
  (the ``model_versions``/``model_events`` rows) and ``artifacts`` (the files);
- serving: ``predict`` (forecasts from the champion) and ``serving`` (the web app's
  in-process model cache).
"""
