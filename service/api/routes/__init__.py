"""One module per resource. Routers carry their full path, so route templates (used as metric
labels) read as clients see them."""

API = "/api/v1"
