"""Serving forecasts from the champion: ``predict`` (rows or a symbol in, forecasts out),
``recent`` (the recent stored snapshots a forecast needs, cached per process),
``model_cache`` (the web app's in-process champion) and ``numpy_path`` (the fitted
scikit-learn steps applied with NumPy on the request path).
"""
