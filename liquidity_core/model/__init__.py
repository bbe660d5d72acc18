"""Modelling stage: features, splits, training, the model registry, prediction and serving.

Modules: ``snapshots`` (load the snapshot panel), ``features`` (feature engineering, with
``windows`` for its NumPy windows and per-time statistics), ``splits`` (time-series
splits), ``train`` (the training cycle), ``registry`` (model versions and the champion
pointer), ``predict`` (predictions from the champion) and ``serving`` (the in-process
model cache used by the web app), with ``lean`` (fitted scikit-learn steps applied with
NumPy on the request path).
"""
