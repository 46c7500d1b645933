"""Evaluation: the paper's attack suite on any logits callable (e.g. a reloaded SavedModel)."""
