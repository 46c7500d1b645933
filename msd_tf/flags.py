"""The training flags (`python -m msd_tf.main`): `define(fv)`, `to_config(fv)`, and
`parse_config(argv)`, which reads a recipe's flags into a `TrainConfig` in any process.

Importing this module defines nothing: `msd_tf.main` defines the flags on the process's
FLAGS; library code takes `TrainConfig`. The flags shared with the evaluation live in
`msd_tf.common_flags`.
"""

import functools

from absl import flags

from msd_tf import common_flags as common
from msd_tf.adversaries import catalog
from msd_tf.config import DEFAULT_THREATS, PRECISIONS, TrainConfig
from msd_tf.distribute import STRATEGIES
from msd_tf.models import MODELS
from msd_tf.optimizers import OPTIMIZERS
from msd_tf.threats import L1_PROJECTIONS, NORMS, L1Step, ThreatModel

_DEFAULT = {t.norm: t for t in DEFAULT_THREATS}  # per-norm defaults
_D = TrainConfig  # every other default is TrainConfig's (one source)


def define(fv: flags.FlagValues) -> None:
    """Defines the training flags (`common_flags`' included) on `fv`: `msd_tf.main` on
    the process's FLAGS, `parse_config` on a fresh FlagValues each time."""
    common.define(fv)
    _define_threats(fv)
    _define_training(fv)
    _define_validators(fv)


def _flag(fv, define_fn, name, default, help_, **kwargs):
    define_fn(name, default, help_, flag_values=fv, **kwargs)


def _enum(fv, name, default, values, help_):
    flags.DEFINE_enum(name, default, values, help_, flag_values=fv)


def _define_threats(fv: flags.FlagValues) -> None:
    """The split, model and adversary flags: what is attacked, how, in which balls."""
    d = functools.partial(_flag, fv)
    enum = functools.partial(_enum, fv)
    d(flags.DEFINE_string, "train_split", _D.train_split, "e.g. train, test[1000:].")
    enum("model", _D.model, sorted(MODELS), "Architecture.")
    enum("adversary", _D.adversary, list(catalog.NAMES), "Training adversary.")
    d(flags.DEFINE_list, "norms", list(NORMS), "Threat models of the union (msd, max, avg).")
    for n in NORMS:  # --linf_eps, --linf_alpha, --linf_steps, --l2_eps, ...
        d(flags.DEFINE_float, f"{n}_eps", _DEFAULT[n].eps, f"{n} radius.", lower_bound=0)
        d(flags.DEFINE_float, f"{n}_alpha", _DEFAULT[n].alpha, f"{n} step size.",
          lower_bound=0)
        d(flags.DEFINE_integer, f"{n}_steps", _DEFAULT[n].steps, f"{n} PGD iterations.",
          lower_bound=1)
    d(flags.DEFINE_integer, "l1_restarts", _DEFAULT["l1"].restarts, "l_1 PGD runs.",
      lower_bound=1)
    d(flags.DEFINE_integer, "l1_k1", _DEFAULT["l1"].l1.k_range[0],
      "Smallest k of the top-k l_1 step.", lower_bound=1)
    d(flags.DEFINE_integer, "l1_k2", _DEFAULT["l1"].l1.k_range[1],
      "Largest k of the top-k l_1 step.", lower_bound=1)
    enum("l1_projection", _DEFAULT["l1"].l1.projection, list(L1_PROJECTIONS),
         "l_1 projection: the paper's clip-then-project, or the exact ball-and-box "
         "projection.")
    d(flags.DEFINE_bool, "random_start", False, "PGD starts at a random point of its ball; "
      "MSD at one of a ball drawn per example.")
    d(flags.DEFINE_integer, "msd_steps", _D.msd_steps, "MSD iterations.", lower_bound=1)
    for option in catalog.all_options():
        if option.kind == "list":
            d(flags.DEFINE_list, option.flag, list(option.default), option.help)
        else:
            d(flags.DEFINE_float, option.flag, option.default, option.help,
              lower_bound=option.lower, upper_bound=option.upper)


def _define_training(fv: flags.FlagValues) -> None:
    """The optimisation, schedule, batching, precision and checkpoint flags."""
    d = functools.partial(_flag, fv)
    enum = functools.partial(_enum, fv)
    enum("train_attack", "pgd", ["pgd", "apgd"], "Single-norm attack of linf/l2/l1, max, "
         "avg and eat training: PGD, or APGD from delta = 0 keeping its highest-loss point "
         "(E-AT's and RAMP's training APGD; RAMP always uses it).")
    d(flags.DEFINE_bool, "attack_training_mode", False,
      "Call the model with training=True inside the attack.")
    d(flags.DEFINE_integer, "epochs", _D.epochs, "Train until this epoch (early stop).",
      lower_bound=1)
    d(flags.DEFINE_list, "lr_epochs", [f"{v:g}" for v in _D.lr_epochs],
      "LR schedule knots (epochs).")
    d(flags.DEFINE_list, "lr_values", [f"{v:g}" for v in _D.lr_values], "LR at each knot.")
    enum("optimizer", _D.optimizer, sorted(OPTIMIZERS), "Optimizer.")
    d(flags.DEFINE_float, "momentum", _D.momentum, "SGD momentum.", lower_bound=0)
    d(flags.DEFINE_float, "weight_decay", _D.weight_decay, "Coupled L2 (PyTorch SGD style).",
      lower_bound=0)
    d(flags.DEFINE_float, "ema", _D.ema, "Momentum of an exponential moving average of the "
      "weights, kept by the optimizer and exported (0.99: about the last 100 steps); 0: the "
      "last weights.", lower_bound=0, upper_bound=0.999999)
    d(flags.DEFINE_integer, "batch_size", _D.batch_size, "Global batch size.", lower_bound=1)
    d(flags.DEFINE_integer, "steps_per_epoch", _D.steps_per_epoch, "Steps per epoch; 0: one "
      "pass over the training split.", lower_bound=0)
    d(flags.DEFINE_bool, "augment", _D.augment, "Random crop (pad 4) and flip (CIFAR).")
    d(flags.DEFINE_integer, "shift", _D.shift, "Random translation of each training image by "
      "up to this many pixels in each direction (zeros fill in; no flip: digits' "
      "augmentation); 0: none.", lower_bound=0)
    enum("strategy", _D.strategy, list(STRATEGIES),
         "default, mirrored (local GPUs) or multi_worker (TF_CONFIG).")
    enum("precision", _D.precision, list(PRECISIONS), "Keras dtype policy of the model: "
         "mixed_bfloat16 / mixed_float16 compute in 16 bits (float16 with loss scaling); "
         "the attack's perturbation, projections, norms and losses stay float32; the "
         "SavedModel is exported in float32.")
    d(flags.DEFINE_string, "init_from", None,
      "Fine-tune: start from this SavedModel or training-run folder.")
    d(flags.DEFINE_integer, "keep_checkpoints", _D.keep_checkpoints, "Newest epoch "
      "checkpoints kept (older ones are deleted after a newer one is saved); 0 keeps all.",
      lower_bound=0)


def _define_validators(fv: flags.FlagValues) -> None:
    """Radii and steps above 0, and the l_1 step's k range in order."""
    for n in NORMS:
        for name in (f"{n}_eps", f"{n}_alpha"):
            flags.register_validator(name, lambda v: v > 0, message=f"--{name} must be > 0",
                                     flag_values=fv)
    flags.register_multi_flags_validator(
        ["l1_k1", "l1_k2"], lambda f: f["l1_k1"] <= f["l1_k2"],
        message="--l1_k1 must be <= --l1_k2", flag_values=fv)


def _floats(name, values):
    try:
        return tuple(float(v) for v in values)
    except ValueError as e:
        raise ValueError(f"--{name} must be numbers. Received: {values}") from e


def _threats(fv: flags.FlagValues) -> tuple[ThreatModel, ...]:
    """One ThreatModel per norm of --norms (in the order l_inf, l_2, l_1)."""
    chosen = fv["norms"].value
    unknown = [n for n in chosen if n not in NORMS]
    if unknown or len(set(chosen)) != len(chosen) or not chosen:
        raise ValueError(f"--norms must be distinct names among {NORMS}. "
                         f"Received: {chosen}")
    out = []
    for n in NORMS:
        if n not in chosen:
            continue
        extra = {}
        if n == "l1":
            extra = dict(restarts=fv["l1_restarts"].value,
                         l1=L1Step(k_range=(fv["l1_k1"].value, fv["l1_k2"].value),
                                   projection=fv["l1_projection"].value))
        out.append(ThreatModel(norm=n, eps=fv[f"{n}_eps"].value,
                               alpha=fv[f"{n}_alpha"].value, steps=fv[f"{n}_steps"].value,
                               random_start=fv["random_start"].value, **extra))
    return tuple(out)


def _options_of(fv: flags.FlagValues) -> dict:
    """The chosen adversary's options from their flags; another adversary's option
    given on the command line or in a flagfile is refused, not ignored."""
    adversary = fv["adversary"].value
    own = catalog.options_of(adversary)
    stray = [f"--{o.flag}" for o in catalog.all_options()
             if o not in own and fv[o.flag].present]
    if stray:
        raise ValueError(f"{', '.join(stray)}: not an option of --adversary={adversary}; "
                         "drop it or choose the adversary it belongs to.")
    return {o.name: o.read(fv[o.flag].value) for o in own}


def to_config(fv: flags.FlagValues = flags.FLAGS) -> TrainConfig:
    """Reads the parsed flags (the process's, or `fv`) into a validated `TrainConfig`."""
    v = lambda name: fv[name].value  # noqa: E731
    return TrainConfig(
        dataset=v("dataset"), data_dir=v("data_dir"),
        train_split=v("train_split"), eval_split=v("eval_split"),
        model=v("model"), adversary=v("adversary"), threats=_threats(fv),
        msd_steps=v("msd_steps"), adversary_options=_options_of(fv),
        attack_training_mode=v("attack_training_mode"), train_attack=v("train_attack"),
        epochs=v("epochs"), lr_epochs=_floats("lr_epochs", v("lr_epochs")),
        lr_values=_floats("lr_values", v("lr_values")), optimizer=v("optimizer"),
        momentum=v("momentum"), weight_decay=v("weight_decay"), ema=v("ema"),
        batch_size=v("batch_size"), steps_per_epoch=v("steps_per_epoch"),
        augment=v("augment"), shift=v("shift"), seed=v("seed"), strategy=v("strategy"),
        jit_compile=v("jit_compile"), precision=v("precision"),
        deterministic=v("deterministic"), init_from=v("init_from"),
        keep_checkpoints=v("keep_checkpoints"), output_dir=v("output_dir"))


def parse_config(argv: list[str]) -> TrainConfig:
    """`msd_tf.main`'s flags (flagfiles expanded, later flags win) -> `TrainConfig`,
    parsed into a fresh `FlagValues`: the process's own flags are not touched, so a
    library caller (the benchmarks) reads any number of recipes in one process.

    Raises:
      ValueError: an unknown flag, a value a flag or validator refuses, a missing
        flagfile, or a config `TrainConfig` refuses; the message names it.
    """
    from msd_tf import cli

    fv = flags.FlagValues()
    define(fv)
    try:
        rest = fv(["msd_tf", *cli.expand_flagfiles(list(argv))])[1:]
    except (flags.Error, OSError) as e:
        raise ValueError(str(e)) from e
    if rest:
        raise ValueError(f"unexpected arguments {rest}; flags are written --name=value "
                         "(a flagfile as --flagfile=path).")
    return to_config(fv)
