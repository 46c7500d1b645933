"""`TrainConfig`: every setting of a training run, validated, with no absl dependency."""

import dataclasses
import json

from msd_tf import data
from msd_tf.adversaries import ADVERSARIES, Adversary
from msd_tf.models import MODELS
from msd_tf.threats import ThreatModel

STRATEGIES = ("default", "mirrored", "multi_worker")
OPTIMIZERS = ("adam", "sgd")
# Fields that may differ between a run and its resumption (not part of the experiment).
# The data are compared by content (`train_data_sha256`), not by `data_dir`, so the
# same files given by a relative or an absolute path are the same experiment.
_NOT_EXPERIMENT = ("output_dir", "epochs", "data_dir", "eval_split", "keep_checkpoints")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A training run. See `msd_tf/flags.py` for the meaning of every field."""

    dataset: str = "mnist"
    data_dir: str | None = None
    train_split: str = "train"
    eval_split: str = "test[:1000]"
    model: str = "mnist_cnn"
    adversary: str = "msd"
    norms: tuple[str, ...] = ("linf", "l2", "l1")
    linf_eps: float = 0.3
    linf_alpha: float = 0.01
    linf_steps: int = 50
    l2_eps: float = 2.0
    l2_alpha: float = 0.1
    l2_steps: int = 100
    l1_eps: float = 10.0
    l1_alpha: float = 0.8
    l1_steps: int = 50
    l1_restarts: int = 1
    l1_k1: int = 5
    l1_k2: int = 20
    l1_projection: str = "clip_then_project"
    random_start: bool = False
    msd_steps: int = 100
    attack_training_mode: bool = False
    epochs: int = 15
    lr_epochs: tuple[float, ...] = (0.0, 6.0, 15.0)
    lr_values: tuple[float, ...] = (0.0, 1e-3, 0.0)
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 100
    steps_per_epoch: int = 0
    augment: bool = False
    seed: int = 0
    strategy: str = "default"
    jit_compile: bool = False
    deterministic: bool = True
    init_from: str | None = None
    keep_checkpoints: int = 2
    output_dir: str = "runs/default"

    def __post_init__(self):
        def choice(name, allowed):
            if getattr(self, name) not in allowed:
                raise ValueError(f"`{name}` must be one of {sorted(allowed)}. "
                                 f"Received: {name}={getattr(self, name)!r}")

        choice("dataset", list(data.DATASETS))
        choice("model", MODELS)
        choice("adversary", ADVERSARIES)
        choice("strategy", STRATEGIES)
        choice("optimizer", OPTIMIZERS)
        for name in ("epochs", "batch_size", "msd_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1. Received: {name}={getattr(self, name)}")
        if self.steps_per_epoch < 0:
            raise ValueError(f"`steps_per_epoch` must be >= 0 (0: a full pass). "
                             f"Received: {self.steps_per_epoch}")
        if self.weight_decay < 0:
            raise ValueError(f"`weight_decay` must be >= 0. Received: {self.weight_decay}")
        object.__setattr__(self, "norms", tuple(self.norms))
        if not self.norms or len(set(self.norms)) != len(self.norms) or not set(
                self.norms) <= {"linf", "l2", "l1"}:
            raise ValueError("`norms` must be distinct names among linf, l2, l1. "
                             f"Received: norms={self.norms!r}")
        if self.adversary in ("linf", "l2", "l1") and self.adversary not in self.norms:
            raise ValueError(f"`adversary` {self.adversary!r} is not among `norms` "
                             f"{self.norms!r}.")
        data.parse_split(self.train_split)
        data.parse_split(self.eval_split)
        self.threats()  # validates eps, alpha, steps, k-range
        object.__setattr__(self, "lr_epochs", tuple(float(v) for v in self.lr_epochs))
        object.__setattr__(self, "lr_values", tuple(float(v) for v in self.lr_values))
        if len(self.lr_epochs) != len(self.lr_values) or len(self.lr_epochs) < 2:
            raise ValueError("`lr_epochs` and `lr_values` need the same length (>= 2). "
                             f"Received: {self.lr_epochs}, {self.lr_values}")
        if any(b <= a for a, b in zip(self.lr_epochs, self.lr_epochs[1:])):
            raise ValueError("`lr_epochs` must increase strictly (knots of the schedule, "
                             f"in epochs), e.g. 0,6,15. Received: {self.lr_epochs}")
        if self.keep_checkpoints < 0:
            raise ValueError("`keep_checkpoints` must be >= 0 (0: keep all). "
                             f"Received: {self.keep_checkpoints}")

    def threats(self) -> tuple[ThreatModel, ...]:
        """The `ThreatModel`s of `norms`, in the order linf, l2, l1."""
        return tuple(t for t in self._all_threats() if t.norm in self.norms)

    def _all_threats(self) -> tuple[ThreatModel, ...]:
        common = dict(random_start=self.random_start)
        return (
            ThreatModel("linf", self.linf_eps, self.linf_alpha, self.linf_steps,
                                **common),
            ThreatModel("l2", self.l2_eps, self.l2_alpha, self.l2_steps, **common),
            ThreatModel("l1", self.l1_eps, self.l1_alpha, self.l1_steps,
                                restarts=self.l1_restarts, k_range=(self.l1_k1, self.l1_k2),
                                l1_projection=self.l1_projection, **common),
        )

    def make_adversary(self) -> Adversary:
        return Adversary(self.adversary, self.threats(), msd_steps=self.msd_steps,
                         training=self.attack_training_mode)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    def experiment(self, train_data_sha256: str) -> dict:
        """The fields that define the experiment (a resumed run must match them), with
        the training data's content fingerprint in place of `data_dir`."""
        d = dataclasses.asdict(self)
        for k in _NOT_EXPERIMENT:
            d.pop(k)
        d["train_data_sha256"] = train_data_sha256
        return json.loads(json.dumps(d))  # tuples -> lists, as read back from JSON


def experiment_of(saved: dict) -> dict:
    """`TrainConfig.experiment` of a saved config.json (its extra keys included)."""
    return {k: v for k, v in saved.items() if k not in _NOT_EXPERIMENT}
