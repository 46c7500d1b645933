"""Is one model more robust than another on the same examples? A per-example sign test.

  python -m msd_tf.compare --eval_dir=runs/union_full/eval --pairs=eat:msd,msd:ramp
  python -m msd_tf.compare --eval_dir=runs/a/eval,runs/b/eval --pairs=msd:msd_ (any
      number of msd_tf.evaluate output folders of the same examples; model names as in
      their results.json)

Prints, per pair and threat (`--threats`, default union), both robust accuracies, how
many examples only the first / only the second keeps robust, and the exact two-sided
sign test's p-value (`msd_tf.evaluation.compare`).
"""

import argparse
import sys

from msd_tf.evaluation import compare  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval_dir", required=True,
                        help="msd_tf.evaluate output folder(s), comma-separated")
    parser.add_argument("--pairs", required=True, help="first:second[,first:second...]")
    parser.add_argument("--threats", default="union",
                        help=f"comma-separated, of {','.join(compare.THREATS)}")
    args = parser.parse_args(argv)
    try:
        flags = {}
        for folder in args.eval_dir.split(","):
            for name, f in compare.robust_flags(folder).items():
                if name in flags:
                    raise compare.CompareError(
                        f"model {name!r} is in two of the folders; compare within one "
                        "folder or rename a model's folder.")
                flags[name] = f
        pairs = [p.split(":") for p in args.pairs.split(",")]
        if any(len(p) != 2 or not all(p) for p in pairs):
            raise compare.CompareError(f"--pairs wants first:second[,...]; got {args.pairs!r}.")
        threats = args.threats.split(",")
        unknown = [t for t in threats if t not in compare.THREATS]
        if unknown:
            raise compare.CompareError(f"unknown --threats {unknown}; use "
                                       f"{','.join(compare.THREATS)}.")
        rows = [(a, b, t, compare.compare_models(flags, a, b, t))
                for a, b in pairs for t in threats]
    except compare.CompareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("| first | second | threat | first robust % | second robust % | only first | "
          "only second | p (exact sign test) |")
    print("|---|---|---|---|---|---|---|---|")
    for a, b, t, r in rows:
        print(f"| {a} | {b} | {t} | {100 * r['acc_a']:.1f} | {100 * r['acc_b']:.1f} | "
              f"{r['only_a']} | {r['only_b']} | {r['p']:.2g} |")
    return 0


def run():
    sys.exit(main())


if __name__ == "__main__":
    run()
