"""The model registry: the ``model_versions`` rows (``versions``), the files of each
version and the ``current.json`` pointer (``artifacts``), and what changes the champion or
loads it verified (``champion``: publish, load, reconcile, rollback).
"""
