"""Path API."""
