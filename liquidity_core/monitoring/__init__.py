"""The forecast loop: every new snapshot is scored by the champion and stored
(``forecasts``); once the outcome arrives, realized accuracy and interval coverage are
measured per version (``accuracy``), feature drift against the training window
(``drift``), and an alert raised through one hook (``alerts``).
"""
