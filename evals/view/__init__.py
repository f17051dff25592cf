"""`evals view`: a local web viewer of the run store (Starlette app, Jinja2 templates, shipped static assets)."""
