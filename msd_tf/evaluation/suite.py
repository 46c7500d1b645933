"""What an evaluation runs: the attack suites of PAPER_NOTES section 7 and beyond.

An `AttackSpec` names an attack, the threat model (norm, radius) it belongs to, its
restarts and budget; `spec.threat()` is the one `ThreatModel` our attacks get from it.
How a kind runs (ours or foolbox's) is `adapters.py` (`KINDS`, `run_attack`);
`checks.verify` then decides.

Minimization attacks (DeepFool, DDN, C&W, EAD, Boundary, HopSkipJump, Pointwise, Salt &
Pepper, and Gaussian noise which we run at growing radii) search for the smallest
adversarial perturbation; their norms give accuracy at every radius. Fixed-radius attacks
(our PGD, MIM and SLIDE, foolbox FGSM and PGD) search at the radius only.

Suites: `paper_suite` (PAPER_NOTES section 7), `autoattack_suite` and `strong_additions`
(AutoAttack's standard version), `tb19_suite` (Tramer and Boneh's MNIST evaluation, the
paper's Table 5).
"""

import dataclasses

from msd_tf import threats as threats_lib
from msd_tf.evaluation.adapters import KINDS, OPTION_CHOICES
from msd_tf.threats import NORMS


@dataclasses.dataclass(frozen=True)
class AttackSpec:
    """One attack of a suite.

    Attributes:
      name: unique name (also the cache folder name).
      kind: which implementation (see `KINDS`).
      norm: threat model it belongs to ("linf", "l2", "l1"); results are measured in it.
      eps: radius of that threat model.
      restarts: runs; an example is broken if any run breaks it (minimization
        attacks keep the smallest norm).
      steps: iteration budget (meaning per kind, queries for Square and Sparse-RS;
        None: the kind's default).
      alpha: step size where the kind has one.
      only_robust: run only on the examples that every earlier attack of the suite in
        the same norm failed to break (AutoAttack's protocol: the attacks --suite=strong
        adds); its per-attack row is then the accuracy against it and those before it.
      options: settings of the kind beyond these (`Kind.options` names them and gives
        their defaults), e.g. {"loss": "margin"} for our PGD; a dict or (name, value)
        pairs, kept as sorted pairs (part of the cache key and of the label).
    """

    name: str
    kind: str
    norm: str
    eps: float
    restarts: int = 1
    steps: int | None = None
    alpha: float | None = None
    only_robust: bool = False
    options: tuple = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Unknown attack kind {self.kind!r}; known: {sorted(KINDS)}.")
        options = dict(self.options)
        takes = KINDS[self.kind].options
        unknown = sorted(set(options) - set(takes))
        if unknown:
            raise ValueError(f"Attack kind {self.kind!r} takes no option(s) {unknown}; it "
                             f"takes {sorted(takes)}. Received: options={options!r}")
        for name, value in options.items():
            if name in OPTION_CHOICES and value not in OPTION_CHOICES[name]:
                raise ValueError(f"Option `{name}` must be one of {OPTION_CHOICES[name]}. "
                                 f"Received: {name}={value!r}")
        object.__setattr__(self, "options", tuple(sorted(options.items())))

    @property
    def minimizes(self) -> bool:
        return KINDS[self.kind].minimizes

    def option(self, name: str):
        """The spec's value of its kind's option `name`, else the kind's default."""
        return dict(self.options).get(name, KINDS[self.kind].options[name])

    def threat(self, restarts: int | None = None) -> threats_lib.ThreatModel:
        """The threat model our attacks run: the spec's norm and radius, its step size
        (default eps / 10) and steps (default 100), `restarts` runs (default the spec's)
        and a random start where the kind's `random_start` option says so (None: when
        there are several runs)."""
        restarts = self.restarts if restarts is None else restarts
        start = (self.option("random_start") if "random_start" in KINDS[self.kind].options
                 else None)
        return threats_lib.ThreatModel(norm=self.norm, eps=self.eps,
                                       alpha=self.alpha or self.eps / 10,
                                       steps=self.steps or 100, restarts=restarts,
                                       random_start=restarts > 1 if start is None else start)

    def label(self) -> str:
        after = " (+ earlier)" if self.only_robust else ""
        options = "".join(f", {k}={v:g}" if isinstance(v, float) else f", {k}={v}"
                          for k, v in self.options)
        return f"{KINDS[self.kind].label}{after} ({self.norm}, eps={self.eps:g}{options})"


def paper_suite(dataset: str, *, restarts: int = 10, eps: dict | None = None,
                budget: str = "paper") -> list[AttackSpec]:
    """Every attack of section 7 at the paper's radii and test-time iterations.

    Args:
      dataset: "mnist" / "fashion_mnist" (MNIST radii) or "cifar10".
      restarts: random restarts of the randomized attacks (paper: 10). DDN, DeepFool
        and C&W are deterministic and run once; Boundary keeps its restarts.
      eps: radii overriding the paper's, e.g. {"linf": 4/255} (Tramer-Boneh).
      budget: "paper", or "fast" (few iterations; for tests and smoke runs only).
    """
    radii = dict(threats_lib.radii(dataset), **(eps or {}))
    fast = budget == "fast"
    pgd_presets = {t.norm: t for t in threats_lib.presets(dataset, phase="test")}

    def ours(norm):
        t = pgd_presets[norm]
        if fast:  # 5 steps that can still cross the ball
            return dict(steps=5, alpha=radii[norm] / 2)
        return dict(steps=t.steps, alpha=t.alpha * radii[norm] / t.eps)

    r = restarts
    return [
        AttackSpec("pgd_linf", "pgd", "linf", radii["linf"], r, **ours("linf")),
        AttackSpec("fgsm", "fgsm", "linf", radii["linf"], r),
        AttackSpec("fb_pgd_linf", "fb_pgd", "linf", radii["linf"], r, steps=5 if fast else 40),
        AttackSpec("mim", "mim", "linf", radii["linf"], r, steps=5 if fast else 100,
                   alpha=radii["linf"] / (5 if fast else 100) * 2),
        AttackSpec("pgd_l2", "pgd", "l2", radii["l2"], r, **ours("l2")),
        AttackSpec("fb_pgd_l2", "fb_pgd", "l2", radii["l2"], r, steps=5 if fast else 50),
        AttackSpec("gaussian_noise", "gaussian", "l2", radii["l2"], r, steps=10 if fast else 100),
        AttackSpec("boundary", "boundary", "l2", radii["l2"], 1, steps=50 if fast else 25 * 200),
        AttackSpec("deepfool", "deepfool", "l2", radii["l2"], 1, steps=10 if fast else 50),
        AttackSpec("pointwise_l2", "pointwise", "l2", radii["l2"], r,
                   steps=50 if fast else 1000),
        AttackSpec("ddn", "ddn", "l2", radii["l2"], 1, steps=10 if fast else 100),
        AttackSpec("cw_l2", "cw", "l2", radii["l2"], 1, steps=10 if fast else 1000),
        AttackSpec("pgd_l1", "pgd", "l1", radii["l1"], r, **ours("l1")),
        AttackSpec("salt_pepper", "salt_pepper", "l1", radii["l1"], r,
                   steps=50 if fast else 1000),
        AttackSpec("pointwise_l1", "pointwise", "l1", radii["l1"], r,
                   steps=50 if fast else 1000),
    ]


# The kinds the strong and autoattack suites add to the paper's (AutoAttack's, plus
# Sparse-RS for l_1).
ADDED_KINDS = ("apgd_ce", "apgd_t", "fab_t", "square", "sparse_rs")

# AutoAttack's standard version per norm (fra31/auto-attack, `set_version("standard")`):
# norm -> (APGD-CE restarts, APGD-T target classes); for l_1 both run l_1-APGD with the
# radius schedule 3 eps -> 2 eps -> eps (`attacks/apgd_l1.py`).
AUTOATTACK_STANDARD = {"linf": (1, 9), "l2": (1, 9), "l1": (5, 5)}
# Its FAB-T, every norm: (target classes, iterations); one run per target class.
FAB_T_STANDARD = (9, 100)


def autoattack_suite(dataset: str, *, eps: dict | None = None, budget: str = "paper",
                     apgd_steps: int = 100, queries: int = threats_lib.QUERIES) -> list[AttackSpec]:
    """`--suite=autoattack`: AutoAttack's standard version per norm, each attack on the
    examples still robust to those before it in its norm: APGD-CE (1 restart; l_1: 5)
    and APGD-T (9 target classes; l_1: 5), `apgd_steps` iterations each, then FAB-T (9
    target classes, one run of 100 iterations each; `attacks/fab.py`), then Square
    (`queries` queries; l_1: Square in the l_1 ball). Run as the original AutoAttack on
    an MSD model of an earlier CPU-scale recipe, FAB-T broke 3 of 500 digits at l_1 that
    AutoAttack's APGDs had left, none at l_inf."""
    radii = dict(threats_lib.radii(dataset), **(eps or {}))
    fab_targets, fab_steps = FAB_T_STANDARD
    if budget == "fast":
        apgd_steps, queries, fab_steps = 10, 100, 10
    specs = []
    for norm in NORMS:
        r, (ce_restarts, targets) = radii[norm], AUTOATTACK_STANDARD[norm]
        specs += [
            AttackSpec(f"apgd_ce_{norm}", "apgd_ce", norm, r, ce_restarts, steps=apgd_steps,
                       only_robust=True),
            AttackSpec(f"apgd_t_{norm}", "apgd_t", norm, r, targets, steps=apgd_steps,
                       only_robust=True),
            AttackSpec(f"fab_t_{norm}", "fab_t", norm, r, fab_targets, steps=fab_steps,
                       only_robust=True),
            AttackSpec(f"square_{norm}", "square", norm, r, 1, steps=queries,
                       only_robust=True)]
    return specs


def strong_additions(dataset: str, *, restarts: int = 10, eps: dict | None = None,
                     budget: str = "paper", apgd_steps: int = 100,
                     queries: int = threats_lib.QUERIES) -> list[AttackSpec]:
    """What `--suite=strong` adds to the paper's attacks: `autoattack_suite` (APGD-CE,
    APGD-T, FAB-T, Square per norm) with APGD-CE's restarts raised to `restarts` where
    that is more, and Sparse-RS (Croce et al. 2022; `queries` queries) after Square for
    l_1. Every attack runs on the examples still robust to everything before it in its
    norm; with the defaults it is at least AutoAttack's standard version on top of the
    paper's. FAB-T is in because it breaks digits everything else leaves robust (an MSD
    model at budget S: 3 at l_2 and 4 at l_1 of 1000; docs/EVALUATION.md)."""
    specs = []
    for spec in autoattack_suite(dataset, eps=eps, budget=budget, apgd_steps=apgd_steps,
                                 queries=queries):
        if spec.kind == "apgd_ce":
            spec = dataclasses.replace(spec, restarts=max(spec.restarts, restarts))
        specs.append(spec)
        if spec.kind == "square" and spec.norm == "l1":
            specs.append(AttackSpec("sparse_rs_l1", "sparse_rs", "l1", spec.eps, 1,
                                    steps=spec.steps, only_robust=True))
    return specs


# Tramer and Boneh's MNIST evaluation (NeurIPS 2019; ftramer/MultiRobustness:
# scripts/eval_mnist_lps.py, pgd_attack.py, eval_fb.py, eval_ch.py), one run per attack:
# their PGD and SLIDE take 100 steps (PGD: a = 2.5 eps / steps; SLIDE: a = 0.5 at the
# 99th percentile), their Boundary 5000 iterations of up to 25 directions.
TB19_STEPS = 100
TB19_SLIDE_STEP = 0.5
TB19_BOUNDARY = (5000, 25)


def tb19_suite(dataset: str, eps: dict | None = None, budget: str = "paper") -> list[AttackSpec]:
    """`--suite=tb19`: Tramer and Boneh's attacks (the paper's Table 5), every one run
    once (their 40 repetitions are not run: the paper's Table 5 has no restarts), on
    every clean example:

    - l_inf: PGD (ours; 100 steps of 2.5 eps / 100, a random start, the margin loss
      -(z_y - max_{j != y} z_j)); HopSkipJump l_inf (their BAPP; settings not in their
      code: foolbox's, 64 iterations from 100 * sqrt(iteration) gradient queries).
    - l_2: PGD (ours; as l_inf); Boundary (5000 iterations of up to 25 directions:
      25 * 5000 foolbox-3 steps, as `paper_suite`'s); C&W L2 (CleverHans' settings: 9
      binary search steps, 1000 iterations, learning rate 5e-3, initial constant 1e-2).
    - l_1: SLIDE (ours; 100 steps, a = 0.5, q = 99, a random start, the margin loss);
      Pointwise (as `paper_suite`'s); EAD (the L1 decision rule, see `KINDS["ead"]`).

    Args:
      dataset: "mnist" (or "fashion_mnist"): MNIST radii 0.3 / 2.0 / 10.
      eps: radii overriding those.
      budget: "paper", or "fast" (a few iterations; for tests and smoke runs only).
    """
    radii = dict(threats_lib.radii(dataset), **(eps or {}))
    fast = budget == "fast"
    steps = 5 if fast else TB19_STEPS
    ascent = {"loss": "margin", "random_start": True}

    def pgd(norm):  # their step: 2.5 eps / steps
        return dict(steps=steps, alpha=2.5 * radii[norm] / steps, options=ascent)

    iterations, directions = TB19_BOUNDARY
    return [
        AttackSpec("pgd_linf", "pgd", "linf", radii["linf"], **pgd("linf")),
        AttackSpec("hsj_linf", "hsj_linf", "linf", radii["linf"], steps=2 if fast else 64,
                   options={"initial_gradient_eval_steps": 10 if fast else 100}),
        AttackSpec("pgd_l2", "pgd", "l2", radii["l2"], **pgd("l2")),
        AttackSpec("boundary", "boundary", "l2", radii["l2"],
                   steps=50 if fast else directions * iterations),
        AttackSpec("cw_l2", "cw", "l2", radii["l2"], steps=10 if fast else 1000,
                   options={"binary_search_steps": 9, "stepsize": 5e-3, "initial_const": 1e-2}),
        # fast: steps of eps / 2, so that 5 of them can cross the ball
        AttackSpec("slide", "slide", "l1", radii["l1"], steps=steps,
                   alpha=radii["l1"] / 2 if fast else TB19_SLIDE_STEP,
                   options=dict(ascent, q=99.0)),
        AttackSpec("pointwise_l1", "pointwise", "l1", radii["l1"], steps=50 if fast else 1000),
        AttackSpec("ead", "ead", "l1", radii["l1"], steps=10 if fast else 1000),
    ]
