"""The paper's result tables, stored once (Maini, Wong, Kolter, ICML 2020,
arXiv:1909.04068; PAPER_NOTES section 8). Robust accuracy in percent.

Keys: models "linf", "l2", "l1" (P_inf, P_2, P_1: single-norm PGD training), "max",
"avg", "msd"; columns "clean", "linf", "l2", "l1", "all" (per-example worst case over
every attack of every threat model). The paper has no standard-training row in these
tables: `reproduce` trains one as a baseline and shows "-" for the paper.
"""

from msd_tf.threats import NORMS

MODEL_NAMES = {"vanilla": "Standard", "linf": "P_inf", "l2": "P_2", "l1": "P_1",
               "max": "MAX", "avg": "AVG", "msd": "MSD"}
COLUMNS = ("clean", *NORMS, "all")


def _table(rows: dict) -> dict:
    return {m: dict(zip(COLUMNS, values)) for m, values in rows.items()}


# Table 3: MNIST, eps (0.3, 2.0, 10), first 1000 test digits, the attacks of section 7.
TABLE_3 = _table({
    "linf": (99.1, 90.3, 13.6, 4.2, 3.7),
    "l2": (99.2, 0.4, 69.2, 43.4, 0.4),
    "l1": (99.3, 0.0, 38.5, 70.0, 0.0),
    "max": (98.6, 51.0, 61.9, 52.6, 42.1),
    "avg": (99.1, 65.2, 60.1, 39.2, 34.9),
    "msd": (98.3, 62.7, 67.9, 65.0, 58.4),
})

# Table 4: CIFAR-10, eps (0.03, 0.5, 12), first 1000 test images.
TABLE_4 = _table({
    "linf": (83.3, 50.7, 57.3, 16.0, 15.6),
    "l2": (90.2, 28.3, 61.6, 46.6, 27.5),
    "l1": (73.3, 0.2, 0.0, 7.9, 0.0),
    "max": (81.0, 44.9, 61.7, 39.4, 34.9),
    "avg": (84.6, 42.5, 65.0, 54.0, 40.6),
    "msd": (81.1, 48.0, 64.3, 53.0, 47.0),
})

# Table 5: the MNIST MSD model under Tramer and Boneh's evaluation (their attacks, no
# restarts) at radii 0.3 / 2.0 / 10 (l_inf / l_2 / l_1); `--suite=tb19`,
# flags/tb19/mnist_eval.cfg.
TABLE_5 = {"msd": dict(zip(COLUMNS, (98.3, 75.9, 67.9, 74.8, 65.2)))}

# Table 7: CIFAR-10-C accuracy (mean over corruptions and severities).
TABLE_7 = {"vanilla": 66.0, "linf": 75.0, "l2": 82.7, "l1": 57.8, "max": 70.8, "avg": 76.8,
           "msd": 74.2}

# Appendix F: MSD trained on l_inf and l_1 only, against the full MSD (points of robust
# accuracy; the paper states them approximately: "about 1 point lower" at l_inf and l_1,
# "about 2" at l_2).
SECTION_F_DIFFERENCE = {"linf": -1.0, "l2": -2.0, "l1": -1.0}

# Table 6 (the WRN-34-10 comparison with Tramer and Boneh) has no numbers in PAPER_NOTES.
TABLES = {3: TABLE_3, 4: TABLE_4, 5: TABLE_5}
DATASET_OF_TABLE = {3: "mnist", 4: "cifar10"}

