"""The training flags (`python -m msd_tf.main`), and `to_config()`.

Imported only by the training entry point; library code takes `TrainConfig`. The
flags shared with the evaluation live in `msd_tf.common_flags`.
"""

from absl import flags

from msd_tf import common_flags as common
from msd_tf.adversaries import ADVERSARIES
from msd_tf.config import OPTIMIZERS, STRATEGIES, TrainConfig
from msd_tf.models import MODELS

_TRAIN_SPLIT = flags.DEFINE_string("train_split", "train", "e.g. train, test[1000:].")
_MODEL = flags.DEFINE_enum("model", "mnist_cnn", sorted(MODELS), "Architecture.")
_ADVERSARY = flags.DEFINE_enum("adversary", "msd", list(ADVERSARIES), "Training adversary.")
_NORMS = flags.DEFINE_list("norms", ["linf", "l2", "l1"],
                           "Threat models of the union (msd, max, avg).")
_LINF_EPS = flags.DEFINE_float("linf_eps", 0.3, "l_inf radius.", lower_bound=0)
_LINF_ALPHA = flags.DEFINE_float("linf_alpha", 0.01, "l_inf step size.", lower_bound=0)
_LINF_STEPS = flags.DEFINE_integer("linf_steps", 50, "l_inf PGD iterations.", lower_bound=1)
_L2_EPS = flags.DEFINE_float("l2_eps", 2.0, "l_2 radius.", lower_bound=0)
_L2_ALPHA = flags.DEFINE_float("l2_alpha", 0.1, "l_2 step size.", lower_bound=0)
_L2_STEPS = flags.DEFINE_integer("l2_steps", 100, "l_2 PGD iterations.", lower_bound=1)
_L1_EPS = flags.DEFINE_float("l1_eps", 10.0, "l_1 radius.", lower_bound=0)
_L1_ALPHA = flags.DEFINE_float("l1_alpha", 0.8, "l_1 step size.", lower_bound=0)
_L1_STEPS = flags.DEFINE_integer("l1_steps", 50, "l_1 PGD iterations.", lower_bound=1)
_L1_RESTARTS = flags.DEFINE_integer("l1_restarts", 1, "l_1 PGD runs.", lower_bound=1)
_L1_K1 = flags.DEFINE_integer("l1_k1", 5, "Smallest k of the top-k l_1 step.", lower_bound=1)
_L1_K2 = flags.DEFINE_integer("l1_k2", 20, "Largest k of the top-k l_1 step.", lower_bound=1)
_L1_PROJECTION = flags.DEFINE_enum(
    "l1_projection", "clip_then_project", ["clip_then_project", "exact"],
    "l_1 projection: the paper's clip-then-project, or the exact ball-and-box projection.")
_RANDOM_START = flags.DEFINE_bool("random_start", False, "PGD starts at a random point.")
_MSD_STEPS = flags.DEFINE_integer("msd_steps", 100, "MSD iterations.", lower_bound=1)
_ATTACK_TRAINING_MODE = flags.DEFINE_bool(
    "attack_training_mode", False, "Call the model with training=True inside the attack.")
_EPOCHS = flags.DEFINE_integer("epochs", 15, "Train until this epoch (early stop).",
                               lower_bound=1)
_LR_EPOCHS = flags.DEFINE_list("lr_epochs", ["0", "6", "15"], "LR schedule knots (epochs).")
_LR_VALUES = flags.DEFINE_list("lr_values", ["0", "1e-3", "0"], "LR at each knot.")
_OPTIMIZER = flags.DEFINE_enum("optimizer", "adam", list(OPTIMIZERS), "Optimizer.")
_MOMENTUM = flags.DEFINE_float("momentum", 0.9, "SGD momentum.", lower_bound=0)
_WEIGHT_DECAY = flags.DEFINE_float("weight_decay", 0.0, "Coupled L2 (PyTorch SGD style).",
                                   lower_bound=0)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 100, "Global batch size.", lower_bound=1)
_STEPS_PER_EPOCH = flags.DEFINE_integer(
    "steps_per_epoch", 0, "Steps per epoch; 0: one pass over the training split.",
    lower_bound=0)
_AUGMENT = flags.DEFINE_bool("augment", False, "Random crop (pad 4) and flip (CIFAR).")
_STRATEGY = flags.DEFINE_enum("strategy", "default", list(STRATEGIES),
                              "default, mirrored (local GPUs) or multi_worker (TF_CONFIG).")
_JIT = flags.DEFINE_bool("jit_compile", False, "Compile the train step with XLA.")
_INIT_FROM = flags.DEFINE_string(
    "init_from", None, "Fine-tune: start from this SavedModel or training-run folder.")
_KEEP_CHECKPOINTS = flags.DEFINE_integer(
    "keep_checkpoints", 2, "Newest epoch checkpoints kept (older ones are deleted after "
    "a newer one is saved); 0 keeps all.", lower_bound=0)


def _positive(name):
    flags.register_validator(name, lambda v: v > 0, message=f"--{name} must be > 0")


for _name in ("linf_eps", "linf_alpha", "l2_eps", "l2_alpha", "l1_eps", "l1_alpha"):
    _positive(_name)
flags.register_multi_flags_validator(
    ["l1_k1", "l1_k2"], lambda f: f["l1_k1"] <= f["l1_k2"], message="--l1_k1 must be <= --l1_k2")


def _floats(name, values):
    try:
        return tuple(float(v) for v in values)
    except ValueError as e:
        raise ValueError(f"--{name} must be numbers. Received: {values}") from e


def to_config() -> TrainConfig:
    """Reads the parsed flags into a validated `TrainConfig`."""
    return TrainConfig(
        dataset=common.DATASET.value, data_dir=common.DATA_DIR.value,
        train_split=_TRAIN_SPLIT.value,
        eval_split=common.EVAL_SPLIT.value, model=_MODEL.value, adversary=_ADVERSARY.value,
        norms=tuple(_NORMS.value),
        linf_eps=_LINF_EPS.value, linf_alpha=_LINF_ALPHA.value, linf_steps=_LINF_STEPS.value,
        l2_eps=_L2_EPS.value, l2_alpha=_L2_ALPHA.value, l2_steps=_L2_STEPS.value,
        l1_eps=_L1_EPS.value, l1_alpha=_L1_ALPHA.value, l1_steps=_L1_STEPS.value,
        l1_restarts=_L1_RESTARTS.value, l1_k1=_L1_K1.value, l1_k2=_L1_K2.value,
        l1_projection=_L1_PROJECTION.value, random_start=_RANDOM_START.value,
        msd_steps=_MSD_STEPS.value, attack_training_mode=_ATTACK_TRAINING_MODE.value,
        epochs=_EPOCHS.value, lr_epochs=_floats("lr_epochs", _LR_EPOCHS.value),
        lr_values=_floats("lr_values", _LR_VALUES.value), optimizer=_OPTIMIZER.value,
        momentum=_MOMENTUM.value, weight_decay=_WEIGHT_DECAY.value,
        batch_size=_BATCH_SIZE.value, steps_per_epoch=_STEPS_PER_EPOCH.value,
        augment=_AUGMENT.value, seed=common.SEED.value, strategy=_STRATEGY.value,
        jit_compile=_JIT.value, deterministic=common.DETERMINISTIC.value,
        init_from=_INIT_FROM.value, keep_checkpoints=_KEEP_CHECKPOINTS.value,
        output_dir=common.OUTPUT_DIR.value)
