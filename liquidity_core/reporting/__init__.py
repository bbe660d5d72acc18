"""What people read: the EDA and model report (``report``, with ``totals`` and ``html``),
its realized-accuracy section (``accuracy_section``), the model-history table
(``model_history``) and the SVG charts that the report, the web app and the Airflow
plugin share (``charts``, ``forecast_charts``).
"""
