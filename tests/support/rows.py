"""A valid one-row prediction request body, shared by the web tests: the example the
API documents (``webapp.openapi.EXAMPLE_ROW``), so the documented example is tested too."""

from webapp.openapi import EXAMPLE_ROW

ROW = dict(EXAMPLE_ROW)
