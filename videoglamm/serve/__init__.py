"""`videoglamm serve`: a local web demo. `session` and `render` are plain functions (no web framework);
`app` builds the Gradio page on them (the `[demo]` extra)."""
