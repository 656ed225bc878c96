"""Teaching a model the command language: clean prose, sessions rendered from
edit histories and synthetic tasks, training data, evaluation.

Everything here sits on top of the editor's own parts (the session, the
runner, the document engine), so what the model learns from is exactly what
it reads at run time."""
