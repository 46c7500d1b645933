"""The adversaries' names and their own constructor options, without TensorFlow: what
the training flags are defined from (`msd_tf.flags`), so that parsing a command line or a
recipe never imports TensorFlow. The classes live in the family modules; `registry`
maps these names to them (and checks at import that both list the same names).
"""

import dataclasses

# In the order `--adversary` lists them.
NAMES = ("none", "linf", "l2", "l1", "msd", "max", "avg", "eat", "ramp")


@dataclasses.dataclass(frozen=True)
class Option:
    """A constructor option of one adversary and the `msd_tf.main` flag that sets it:
    the flag is defined from this, its value reaches `TrainConfig.adversary_options`
    (part of the run's experiment) and the constructor by `name`.

    Attributes:
      name: the constructor keyword; flag: the flag's name (without --).
      kind: "float" or "list" (a comma-separated list of strings).
      default: the constructor's default; help: the flag's help.
      lower, upper: bounds of a float flag.
      zero_is_none: a float flag set to 0 gives None (so 0 turns a flagfile's value off).
    """

    name: str
    flag: str
    kind: str
    default: object
    help: str
    lower: float | None = None
    upper: float | None = None
    zero_is_none: bool = False

    def read(self, value):
        """The constructor value of the flag's parsed value."""
        if self.kind == "list":
            return tuple(value)
        if self.zero_is_none and not value:
            return None
        return value


# Each adversary's own options (`Adversary.options`); an adversary not listed has none.
OPTIONS: dict[str, tuple[Option, ...]] = {
    "ramp": (
        Option("lam", "ramp_lambda", "float", 5.0, "RAMP: weight of its KL term (5 from "
               "scratch, 1.5 for fine-tuning in its authors' scripts).", lower=0),
        Option("pair", "ramp_pair", "list", ("linf", "l1"), "RAMP: the source and target "
               "norms, each attacked with APGD at its --<norm>_eps and --<norm>_steps."),
        Option("projection", "ramp_projection", "float", None, "RAMP: its gradient "
               "projection with this beta (their from-scratch setting: 0.5); unset or 0: "
               "none (0 turns off a flagfile's).", lower=0, upper=1, zero_is_none=True)),
}


def options_of(name: str) -> tuple[Option, ...]:
    """The options of the adversary `name` (none for an unknown name)."""
    return OPTIONS.get(name, ())


def all_options() -> list[Option]:
    """Every adversary's options, each defining one training flag."""
    return [o for name in NAMES for o in options_of(name)]
