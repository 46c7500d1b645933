"""`TrainConfig`: every setting of a training run, as a plain frozen dataclass.

Importing it loads no TensorFlow and no attack code: it depends on `threats` and
`protocol` (whose `PAPER` splits are the defaults) only.
Fields are checked for shape and range here; names (data set, model, adversary,
optimizer, strategy) are checked where the objects are built, by their registries,
which `experiment.train` does before it writes anything.
"""

import dataclasses
import json

from msd_tf import protocol
from msd_tf.threats import NORMS, ThreatModel, presets

# Keras dtype policies: the model computes in the low precision; attacks keep the
# perturbation, projections, norms and losses in float32 (models end in a float32 layer).
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
# One run each: the paper's two l_1 runs (appendix C.1) are set in its flagfiles.
DEFAULT_THREATS = tuple(t.replace(restarts=1) for t in presets("mnist", phase="train"))
# Fields that may differ between a run and its resumption (not part of the experiment).
# The data are compared by content (`train_data_sha256`), not by `data_dir`, so the
# same files given by a relative or an absolute path are the same experiment.
_NOT_EXPERIMENT = ("output_dir", "epochs", "data_dir", "eval_split", "keep_checkpoints")
# Part of the experiment only when not at these defaults (a run written before they
# existed resumes).
_ONLY_WHEN_SET = {"ema": 0.0, "train_attack": "pgd", "shift": 0, "adversary_options": {}}
# RAMP's options as config.json held them before `adversary_options` (flat fields).
_RAMP_FIELDS = {"ramp_lambda": "lam", "ramp_pair": "pair", "ramp_projection": "projection"}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A training run. See `msd_tf/flags.py` for the meaning of every field.

    `threats` holds one `ThreatModel` per norm of the union, in the order l_inf, l_2,
    l_1 (built by name: `ThreatModel(norm="l2", eps=2.0, ...)`).
    """

    dataset: str = "mnist"
    data_dir: str | None = None
    train_split: str = protocol.PAPER.train_split
    eval_split: str = protocol.PAPER.eval_split
    model: str = "mnist_cnn"
    adversary: str = "msd"
    threats: tuple[ThreatModel, ...] = DEFAULT_THREATS
    msd_steps: int = 100
    adversary_options: dict = dataclasses.field(default_factory=dict)
    attack_training_mode: bool = False
    train_attack: str = "pgd"
    epochs: int = 15
    lr_epochs: tuple[float, ...] = (0.0, 6.0, 15.0)
    lr_values: tuple[float, ...] = (0.0, 1e-3, 0.0)
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    ema: float = 0.0
    batch_size: int = 100
    steps_per_epoch: int = 0
    augment: bool = False
    shift: int = 0
    seed: int = 0
    strategy: str = "default"
    jit_compile: bool = False
    precision: str = "float32"
    deterministic: bool = True
    init_from: str | None = None
    keep_checkpoints: int = 2
    output_dir: str = "runs/default"

    def __post_init__(self):
        for name in ("epochs", "batch_size", "msd_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1. Received: {name}={getattr(self, name)}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"`ema` must be in [0, 1) (0: no weight average). "
                             f"Received: ema={self.ema}")
        for name, low in (("steps_per_epoch", "0 (0: a full pass)"), ("shift", "0 (0: none)"),
                          ("weight_decay", "0"), ("keep_checkpoints", "0 (0: keep all)")):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be >= {low}. Received: {getattr(self, name)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"`precision` must be one of {PRECISIONS}. "
                             f"Received: precision={self.precision!r}")
        threats = tuple(t if isinstance(t, ThreatModel) else ThreatModel(**t)
                        for t in self.threats)
        norms = [t.norm for t in threats]
        if not norms or sorted(norms, key=NORMS.index) != norms or len(set(norms)) != len(norms):
            raise ValueError("`threats` must be one ThreatModel per norm, distinct, in the order "
                             f"{NORMS}. Received norms {norms}")
        object.__setattr__(self, "threats", threats)
        options = self.adversary_options
        if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
            raise ValueError("`adversary_options` must be a dict of the adversary's options "
                             f"by name. Received: {options!r}")
        object.__setattr__(self, "adversary_options", dict(options))
        object.__setattr__(self, "lr_epochs", tuple(float(v) for v in self.lr_epochs))
        object.__setattr__(self, "lr_values", tuple(float(v) for v in self.lr_values))
        if len(self.lr_epochs) != len(self.lr_values) or len(self.lr_epochs) < 2:
            raise ValueError("`lr_epochs` and `lr_values` need the same length (>= 2). "
                             f"Received: {self.lr_epochs}, {self.lr_values}")
        if any(b <= a for a, b in zip(self.lr_epochs, self.lr_epochs[1:])):
            raise ValueError("`lr_epochs` must increase strictly (knots of the schedule, "
                             f"in epochs), e.g. 0,6,15. Received: {self.lr_epochs}")

    @property
    def norms(self) -> tuple[str, ...]:
        """The norms of the union, in the order l_inf, l_2, l_1."""
        return tuple(t.norm for t in self.threats)

    def adversary_settings(self) -> dict:
        """The keyword arguments of `adversaries.make_adversary` that build the adversary
        this config trains with: all it is made of, so also the key of what depends on
        the adversary alone (e.g. a training step's cost)."""
        return dict(name=self.adversary, threats=self.threats, msd_steps=self.msd_steps,
                    training=self.attack_training_mode, train_attack=self.train_attack,
                    **self.adversary_options)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    def experiment(self, train_data_sha256: str) -> dict:
        """The fields that define the experiment (a resumed run must match them), with
        the training data's content fingerprint in place of `data_dir`."""
        d = dataclasses.asdict(self)
        for k in _NOT_EXPERIMENT:
            d.pop(k)
        for k, default in _ONLY_WHEN_SET.items():
            if d[k] == default:
                d.pop(k)
        d["train_data_sha256"] = train_data_sha256
        return json.loads(json.dumps(d))  # tuples -> lists, as read back from JSON


def _upgrade(saved: dict) -> dict:
    """A config.json written before the threats were nested (flat `linf_eps`, ...), or
    before the l_1 settings moved into `ThreatModel.l1` (`k_range`, `l1_gap`,
    `l1_projection` on every threat), or before RAMP's options moved into
    `adversary_options` (`ramp_lambda`, ... on every run), in today's form."""
    saved = dict(saved)
    ramp = {new: saved.pop(old) for old, new in _RAMP_FIELDS.items() if old in saved}
    if ramp and saved.get("adversary") == "ramp":
        saved["adversary_options"] = ramp
    if "threats" not in saved and "linf_eps" in saved:
        common = {"random_start": saved.pop("random_start", False)}
        threats = []
        for n in NORMS:
            fields = {k: saved.pop(f"{n}_{k}") for k in ("eps", "alpha", "steps")}
            if n == "l1":
                fields.update(restarts=saved.pop("l1_restarts"),
                              k_range=[saved.pop("l1_k1"), saved.pop("l1_k2")],
                              l1_projection=saved.pop("l1_projection"))
            if n in saved.get("norms", NORMS):
                threats.append(dict(norm=n, **fields, **common))
        saved.pop("norms", None)
        saved["threats"] = threats
    if "threats" not in saved:
        return saved
    threats = []
    for t in saved["threats"]:
        t = dict(t)
        flat = {new: t.pop(old) for old, new in (("k_range", "k_range"), ("l1_gap", "gap"),
                                                 ("l1_projection", "projection"))
                if old in t}
        if flat and t.get("norm") == "l1":
            t["l1"] = flat
        threats.append(dataclasses.asdict(ThreatModel(**t)))
    saved["threats"] = json.loads(json.dumps(threats))
    return saved


def experiment_of(saved: dict) -> dict:
    """`TrainConfig.experiment` of a saved config.json (its extra keys included)."""
    saved = _upgrade(saved)
    return {k: v for k, v in saved.items()
            if k not in _NOT_EXPERIMENT and not (k in _ONLY_WHEN_SET and v == _ONLY_WHEN_SET[k])}
