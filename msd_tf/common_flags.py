"""The absl flags that both entry points take (training: `msd_tf.flags`; evaluation:
`msd_tf.evaluate`): the data, the seed, determinism, XLA and the output folder.

Entry points call `define(flags.FLAGS)`; library code takes plain arguments.
"""

from absl import flags

from msd_tf import protocol
from msd_tf.data import DATASETS


def define(fv: flags.FlagValues) -> None:
    """Defines the shared flags on `fv` (the process's FLAGS, or a fresh FlagValues)."""
    flags.DEFINE_enum("dataset", "mnist", sorted(DATASETS), "Data set.", flag_values=fv)
    flags.DEFINE_string(
        "data_dir", None, "Offline data: a folder of IDX files, the CIFAR-10 python "
        "batches, or an .npz. Unset: download through tensorflow-datasets.", flag_values=fv)
    flags.DEFINE_string("eval_split", protocol.PAPER.eval_split,
                        "Split evaluated (training: the final summary).", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Seed of weights, data order and attacks.",
                         flag_values=fv)
    flags.DEFINE_bool(
        "deterministic", True, "TF op determinism and one inter-op thread: bit-exact "
        "reruns and resumption.", flag_values=fv)
    flags.DEFINE_bool(
        "jit_compile", False, "Compile with XLA: the train step (attack included) when "
        "training, our attacks when evaluating.", flag_values=fv)
    flags.DEFINE_string("output_dir", "runs/default", "Where the command writes.",
                        flag_values=fv)
