"""The training flags (`python -m msd_tf.main`), and `to_config()`.

Imported only by the training entry point; library code takes `TrainConfig`. The
flags shared with the evaluation live in `msd_tf.common_flags`.
"""

from absl import flags

from msd_tf import common_flags as common
from msd_tf.adversaries import ADVERSARIES
from msd_tf.config import DEFAULT_THREATS, PRECISIONS, TrainConfig
from msd_tf.distribute import STRATEGIES
from msd_tf.models import MODELS
from msd_tf.optimizers import OPTIMIZERS
from msd_tf.threats import L1_PROJECTIONS, NORMS, ThreatModel

_TRAIN_SPLIT = flags.DEFINE_string("train_split", TrainConfig.train_split,
                                   "e.g. train, test[1000:].")
_MODEL = flags.DEFINE_enum("model", TrainConfig.model, sorted(MODELS), "Architecture.")
_ADVERSARY = flags.DEFINE_enum("adversary", TrainConfig.adversary, list(ADVERSARIES),
                               "Training adversary.")
_NORMS = flags.DEFINE_list("norms", list(NORMS), "Threat models of the union (msd, max, avg).")
# Per norm: --linf_eps, --linf_alpha, --linf_steps, --l2_eps, ... (defaults: DEFAULT_THREATS).
_DEFAULT = {t.norm: t for t in DEFAULT_THREATS}
_EPS = {n: flags.DEFINE_float(f"{n}_eps", _DEFAULT[n].eps, f"{n} radius.", lower_bound=0)
        for n in NORMS}
_ALPHA = {n: flags.DEFINE_float(f"{n}_alpha", _DEFAULT[n].alpha, f"{n} step size.",
                                lower_bound=0) for n in NORMS}
_STEPS = {n: flags.DEFINE_integer(f"{n}_steps", _DEFAULT[n].steps, f"{n} PGD iterations.",
                                  lower_bound=1) for n in NORMS}
_L1_RESTARTS = flags.DEFINE_integer("l1_restarts", _DEFAULT["l1"].restarts, "l_1 PGD runs.",
                                    lower_bound=1)
_L1_K1 = flags.DEFINE_integer("l1_k1", _DEFAULT["l1"].k_range[0],
                              "Smallest k of the top-k l_1 step.", lower_bound=1)
_L1_K2 = flags.DEFINE_integer("l1_k2", _DEFAULT["l1"].k_range[1],
                              "Largest k of the top-k l_1 step.", lower_bound=1)
_L1_PROJECTION = flags.DEFINE_enum(
    "l1_projection", _DEFAULT["l1"].l1_projection, list(L1_PROJECTIONS),
    "l_1 projection: the paper's clip-then-project, or the exact ball-and-box projection.")
_RANDOM_START = flags.DEFINE_bool("random_start", False, "PGD starts at a random point of its "
                                      "ball; MSD at one of a ball drawn per example.")
_MSD_STEPS = flags.DEFINE_integer("msd_steps", TrainConfig.msd_steps, "MSD iterations.",
                                  lower_bound=1)
_RAMP_LAMBDA = flags.DEFINE_float(
    "ramp_lambda", TrainConfig.ramp_lambda, "RAMP: weight of its KL term (5 from scratch, "
    "1.5 for fine-tuning in its authors' scripts).", lower_bound=0)
_RAMP_PAIR = flags.DEFINE_list(
    "ramp_pair", list(TrainConfig.ramp_pair), "RAMP: the source and target norms, each "
    "attacked with APGD at its --<norm>_eps and --<norm>_steps.")
_RAMP_PROJECTION = flags.DEFINE_float(
    "ramp_projection", None, "RAMP: its gradient projection with this beta (their "
    "from-scratch setting: 0.5); unset or 0: none (0 turns off a flagfile's).",
    lower_bound=0, upper_bound=1)
_TRAIN_ATTACK = flags.DEFINE_enum(
    "train_attack", "pgd", ["pgd", "apgd"], "Single-norm attack of linf/l2/l1, max, avg and "
    "eat training: PGD, or APGD from delta = 0 keeping its highest-loss point (E-AT's and "
    "RAMP's training APGD; RAMP always uses it).")
_ATTACK_TRAINING_MODE = flags.DEFINE_bool(
    "attack_training_mode", False, "Call the model with training=True inside the attack.")
_D = TrainConfig  # every default below is TrainConfig's (one source)
_EPOCHS = flags.DEFINE_integer("epochs", _D.epochs, "Train until this epoch (early stop).",
                               lower_bound=1)
_LR_EPOCHS = flags.DEFINE_list("lr_epochs", [f"{v:g}" for v in _D.lr_epochs],
                               "LR schedule knots (epochs).")
_LR_VALUES = flags.DEFINE_list("lr_values", [f"{v:g}" for v in _D.lr_values],
                               "LR at each knot.")
_OPTIMIZER = flags.DEFINE_enum("optimizer", _D.optimizer, sorted(OPTIMIZERS), "Optimizer.")
_MOMENTUM = flags.DEFINE_float("momentum", _D.momentum, "SGD momentum.", lower_bound=0)
_WEIGHT_DECAY = flags.DEFINE_float("weight_decay", _D.weight_decay,
                                   "Coupled L2 (PyTorch SGD style).", lower_bound=0)
_EMA = flags.DEFINE_float(
    "ema", _D.ema, "Momentum of an exponential moving average of the weights, kept by the "
    "optimizer and exported (0.99: about the last 100 steps); 0: the last weights.",
    lower_bound=0, upper_bound=0.999999)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", _D.batch_size, "Global batch size.",
                                   lower_bound=1)
_STEPS_PER_EPOCH = flags.DEFINE_integer(
    "steps_per_epoch", _D.steps_per_epoch, "Steps per epoch; 0: one pass over the training "
    "split.", lower_bound=0)
_AUGMENT = flags.DEFINE_bool("augment", _D.augment, "Random crop (pad 4) and flip (CIFAR).")
_SHIFT = flags.DEFINE_integer(
    "shift", _D.shift, "Random translation of each training image by up to this many pixels "
    "in each direction (zeros fill in; no flip: digits' augmentation); 0: none.",
    lower_bound=0)
_STRATEGY = flags.DEFINE_enum("strategy", _D.strategy, list(STRATEGIES),
                              "default, mirrored (local GPUs) or multi_worker (TF_CONFIG).")
_PRECISION = flags.DEFINE_enum(
    "precision", _D.precision, list(PRECISIONS), "Keras dtype policy of the model: "
    "mixed_bfloat16 / mixed_float16 compute in 16 bits (float16 with loss scaling); the "
    "attack's perturbation, projections, norms and losses stay float32.")
_INIT_FROM = flags.DEFINE_string(
    "init_from", None, "Fine-tune: start from this SavedModel or training-run folder.")
_KEEP_CHECKPOINTS = flags.DEFINE_integer(
    "keep_checkpoints", _D.keep_checkpoints, "Newest epoch checkpoints kept (older ones "
    "are deleted after a newer one is saved); 0 keeps all.", lower_bound=0)


def _positive(name):
    flags.register_validator(name, lambda v: v > 0, message=f"--{name} must be > 0")


for _n in NORMS:
    _positive(f"{_n}_eps")
    _positive(f"{_n}_alpha")
flags.register_multi_flags_validator(
    ["l1_k1", "l1_k2"], lambda f: f["l1_k1"] <= f["l1_k2"], message="--l1_k1 must be <= --l1_k2")


def _floats(name, values):
    try:
        return tuple(float(v) for v in values)
    except ValueError as e:
        raise ValueError(f"--{name} must be numbers. Received: {values}") from e


def _threats() -> tuple[ThreatModel, ...]:
    """One ThreatModel per norm of --norms (in the order l_inf, l_2, l_1)."""
    unknown = [n for n in _NORMS.value if n not in NORMS]
    if unknown or len(set(_NORMS.value)) != len(_NORMS.value) or not _NORMS.value:
        raise ValueError(f"--norms must be distinct names among {NORMS}. "
                         f"Received: {_NORMS.value}")
    out = []
    for n in NORMS:
        if n not in _NORMS.value:
            continue
        extra = {}
        if n == "l1":
            extra = dict(restarts=_L1_RESTARTS.value, k_range=(_L1_K1.value, _L1_K2.value),
                         l1_projection=_L1_PROJECTION.value)
        out.append(ThreatModel(norm=n, eps=_EPS[n].value, alpha=_ALPHA[n].value,
                               steps=_STEPS[n].value, random_start=_RANDOM_START.value,
                               **extra))
    return tuple(out)


def to_config() -> TrainConfig:
    """Reads the parsed flags into a validated `TrainConfig`."""
    return TrainConfig(
        dataset=common.DATASET.value, data_dir=common.DATA_DIR.value,
        train_split=_TRAIN_SPLIT.value, eval_split=common.EVAL_SPLIT.value,
        model=_MODEL.value, adversary=_ADVERSARY.value, threats=_threats(),
        msd_steps=_MSD_STEPS.value, ramp_lambda=_RAMP_LAMBDA.value,
        ramp_pair=tuple(_RAMP_PAIR.value), ramp_projection=_RAMP_PROJECTION.value or None,
        attack_training_mode=_ATTACK_TRAINING_MODE.value, train_attack=_TRAIN_ATTACK.value,
        epochs=_EPOCHS.value, lr_epochs=_floats("lr_epochs", _LR_EPOCHS.value),
        lr_values=_floats("lr_values", _LR_VALUES.value), optimizer=_OPTIMIZER.value,
        momentum=_MOMENTUM.value, weight_decay=_WEIGHT_DECAY.value, ema=_EMA.value,
        batch_size=_BATCH_SIZE.value, steps_per_epoch=_STEPS_PER_EPOCH.value,
        augment=_AUGMENT.value, shift=_SHIFT.value, seed=common.SEED.value,
        strategy=_STRATEGY.value,
        jit_compile=common.JIT_COMPILE.value, precision=_PRECISION.value,
        deterministic=common.DETERMINISTIC.value,
        init_from=_INIT_FROM.value, keep_checkpoints=_KEEP_CHECKPOINTS.value,
        output_dir=common.OUTPUT_DIR.value)
