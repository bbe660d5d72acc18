"""Input formats: the three accepted CSV formats and their detection (``formats``), CSV
bytes into rows (``reader``), the row checks (``checks``), the same checks for prediction
input (``records``), and synthetic drops in the first format (``demo``).
"""
