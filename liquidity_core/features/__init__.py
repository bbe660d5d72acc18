"""Features: what is known about a coin at a snapshot (``build``), the NumPy windows and
per-time statistics they use (``windows``), and the stored panel read in time-ordered
chunks with the features over a sliding window (``panel_stream``).
"""
