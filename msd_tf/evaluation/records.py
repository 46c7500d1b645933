"""The evaluation's typed records: what an evaluation is asked to do (`EvalConfig`), what
one attack measured on one model (`AttackRecord`), and what one model's evaluation
produced (`ModelResult`). Pure data; the steps that make and read them are `runner`
(attacks -> records), `aggregate` (records -> accuracies) and `report` (-> files)."""

import dataclasses

import numpy as np

from msd_tf import protocol
from msd_tf.evaluation.checks import broken_at
from msd_tf.evaluation.suite import AttackSpec


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """One evaluation of one or more models.

    Attributes:
      dataset: "mnist", "fashion_mnist" or "cifar10".
      specs: the attacks, in order (`pipeline.build_suite`).
      split, num_examples, data_dir: the examples: the first `num_examples` of `split`,
        from `data_dir` (None: tensorflow-datasets).
      output_dir: where the reports go.
      suite_name: the suite's name, for the provenance.
      batch_size: examples per attack batch (part of the cache key).
      seed: the evaluation's seed; every (model, attack, batch) derives its own.
      cache_dir: per-batch attack results, reused by identical evaluations (default:
        `<output_dir>/cache`).
      jit_compile: XLA-compile our attacks.
      prune_with: an earlier evaluation of the same models and examples: `only_robust`
        attacks skip the examples it broke.
      draw_curves: curves.png (accuracy against radius).
      verbose: progress, per-attack profile.
    """

    dataset: str
    specs: tuple[AttackSpec, ...]
    split: str = protocol.PAPER.eval_split
    num_examples: int = 1000
    data_dir: str | None = None
    output_dir: str = "runs/eval"
    suite_name: str = "custom"
    batch_size: int = 100
    seed: int = 0
    cache_dir: str | None = None
    jit_compile: bool = False
    prune_with: str | None = None
    draw_curves: bool = True
    verbose: bool = True

    def __post_init__(self):
        object.__setattr__(self, "specs", tuple(self.specs))


@dataclasses.dataclass(frozen=True)
class AttackRecord:
    """What one attack measured on the evaluated examples (`[N]` arrays, in order).

    Attributes:
      spec: the attack.
      sound: it found an adversarial example that passed `checks.verify`.
      norms: that example's perturbation norm (in `spec.norm`; inf where none).
      rejected: it claimed one that the checks refused.
      profile: {"seconds", "attacked", "forward", "backward", "cached"}: wall-clock
        seconds, examples attacked, forward / backward example-passes
        (`profiling.CountingLogits`), and whether every batch came from the cache.
    """

    spec: AttackSpec
    sound: np.ndarray
    norms: np.ndarray
    rejected: np.ndarray
    profile: dict

    def broken(self) -> np.ndarray:
        """Examples broken at the attack's radius (`checks.broken_at`)."""
        return broken_at(self.sound, self.norms, self.spec.eps)


@dataclasses.dataclass(frozen=True)
class ModelResult:
    """One model's evaluation.

    Attributes:
      name: the model's name in the reports (unique within an evaluation).
      model: its provenance (path, source, fingerprints, what trained it).
      clean: `[N]` bool, correctly classified without attack.
      records: attack name -> `AttackRecord`, in suite order.
      grid: attack name -> (adversarial images, sound, norms) of the first examples.
      summary: `aggregate.aggregate` of the records.
      warnings: sanity and protocol warnings.
      logits_fn: the loaded model's logits (for the reports; not part of the result).
    """

    name: str
    model: dict
    clean: np.ndarray
    records: dict
    grid: dict
    summary: dict
    warnings: list
    logits_fn: object = dataclasses.field(default=None, repr=False, compare=False)
