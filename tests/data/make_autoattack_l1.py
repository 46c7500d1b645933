"""Makes tests/data/autoattack_l1.npz, the fixture of tests/attacks/test_apgd_l1.py
(run by hand, outside CI; needs an interpreter with torch and pyautoattack):

  python tests/data/make_autoattack_l1.py --torch_python=PATH [--data_dir=../shared/data/mnist]

1. Trains `tests/attacks/helpers.small_cnn` (5,814 weights) on MNIST test[1000:7000]
   for 3 epochs of l_1 PGD adversarial training (eps 10, 10 steps, random start), so
   that its l_1 robustness at eps 10 is neither 0 nor 100%.
2. Runs the original AutoAttack's standard version for L1 at eps 10 on test[:100]
   (`scripts/autoattack_reference.py`: APGD-CE 5 restarts and APGD-T 5 targets with the
   radius schedule, FAB-T, Square 5000 queries).
3. Stores the weights, the 100 digits (uint8), the labels and AutoAttack's per-example
   robust flags after each attack.
"""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
OUT = os.path.join(REPO, "tests", "data", "autoattack_l1.npz")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--torch_python", required=True)
    parser.add_argument("--data_dir", default=os.path.join(REPO, "..", "shared", "data",
                                                           "mnist"))
    args = parser.parse_args()
    import keras

    from msd_tf import data
    from msd_tf.attacks import pgd
    from msd_tf.threats import ThreatModel
    from tests.attacks.helpers import small_cnn

    x, y = data.load_arrays("mnist", "test[:7000]", args.data_dir)
    model = small_cnn(seed=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    threat = ThreatModel("l1", 10.0, 1.0, 10, random_start=True)
    for epoch in range(3):
        for i, lo in enumerate(range(1000, 7000, 100)):
            xb, yb = x[lo:lo + 100], y[lo:lo + 100]
            model.train_on_batch(pgd(model, xb, yb, threat, seed=epoch * 1000 + i).numpy(), yb)
    xe, ye = x[:100], y[:100]
    weights = {"conv1_kernel": model.weights[0].numpy(), "conv1_bias": model.weights[1].numpy(),
               "dense1_kernel": model.weights[2].numpy(), "dense1_bias": model.weights[3].numpy()}
    with tempfile.TemporaryDirectory() as tmp:
        inputs, outputs = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(inputs, x=xe, y=ye, logits=model.predict(xe, verbose=0), eps_l1=10.0,
                 **weights)
        subprocess.run([args.torch_python, os.path.join(REPO, "scripts",
                        "autoattack_reference.py"), inputs, outputs, "--norms=l1"], check=True)
        with np.load(outputs) as f:
            aa = {k: f[k] for k in f.files}
    flags = {k: aa[k] for k in aa if k.startswith("robust_l1_")}
    np.savez_compressed(OUT, x=np.round(xe * 255).astype(np.uint8), y=ye, clean=aa["clean"],
                        attacks=aa["attacks_l1"], max_logit_diff=aa["max_logit_diff"],
                        **weights, **flags)
    print(f"wrote {OUT}: clean {aa['clean'].mean():.0%}, AutoAttack L1 robust "
          + ", ".join(f"{k[10:]} {v.mean():.0%}" for k, v in flags.items()))


if __name__ == "__main__":
    main()
