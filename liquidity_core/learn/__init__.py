"""Learning blocks: the estimators (``estimators``: the anchored forest and the HAR base),
time-ordered splits (``splits``), scores (``metrics``) and conformal intervals
(``intervals``).
"""
