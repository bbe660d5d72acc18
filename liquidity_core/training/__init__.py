"""The nightly training cycle, one module per stage, run in order by ``cycle``: ``data``
(check and stage the panel) -> ``challenger`` (search and score; ``candidates`` holds the
grids, pipelines and rival algorithms) -> ``compare`` (decide against the champion) ->
``publish`` (record the run, publish a winner). ``staging`` passes files between them.
"""
