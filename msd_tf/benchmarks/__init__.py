"""The paper's tables and the union benchmark, assembled from per-model results.

A table is a list of `Unit`s (one model: its recipe, trained and then evaluated); each
unit's small result (clean, per-norm and union robust accuracy, per-digit robust flags,
the resolved recipe, compute, time, machine, commit) is written to
`docs/results/<scale>/<unit>.json`, keyed by the content it depends on (recipe, data,
evaluation, behaviour version). `python -m msd_tf.reproduce` reuses a committed result
whose key matches and trains and evaluates the rest, so a table that takes more hours than
one session is assembled from results committed by earlier ones, and a changed recipe is
retrained, never reused.

Modules: `budgets` (the compute budgets S and M, a recipe's planned passes), `units`
(Unit, its key, its result record), `runs` (the one subprocess helper), `tables` (what
each table holds, and its assembly), `reports` (the tables' Markdown, JSON and figures),
`search` (the recipe search on held-out training
digits), `paper` (the paper's numbers), `autoattack` (a unit against the original
AutoAttack, committed beside its result). The paper's own scale (GPU hours, no committed
results): `paper_scale` (Tables 3 and 4 with the paper's flagfiles, and the CIFAR-10 union
benchmark planned by `union_plan`), reported by `reproduction`.
"""
