"""The absl flags that both entry points take (training: `msd_tf.flags`; evaluation:
`msd_tf.evaluate`): the data, the seed, determinism, XLA and the output folder.

Imported by entry points only; library code takes plain arguments.
"""

from absl import flags

from msd_tf.data import DATASETS

DATASET = flags.DEFINE_enum("dataset", "mnist", sorted(DATASETS), "Data set.")
DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "Offline data: a folder of IDX files, the CIFAR-10 python batches, "
    "or an .npz. Unset: download through tensorflow-datasets.")
EVAL_SPLIT = flags.DEFINE_string("eval_split", "test[:1000]",
                                 "Split evaluated (training: the final summary).")
SEED = flags.DEFINE_integer("seed", 0, "Seed of weights, data order and attacks.")
DETERMINISTIC = flags.DEFINE_bool(
    "deterministic", True, "TF op determinism and one inter-op thread: bit-exact reruns "
    "and resumption.")
JIT_COMPILE = flags.DEFINE_bool(
    "jit_compile", False, "Compile with XLA: the train step (attack included) when "
    "training, our attacks when evaluating.")
OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs/default", "Where the command writes.")
