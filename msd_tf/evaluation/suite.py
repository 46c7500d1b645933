"""The attack suites of PAPER_NOTES section 7 and the code that runs one attack.

An `AttackSpec` names an attack, the threat model (norm, radius) it belongs to, its
restarts and budget. `run_attack` runs it on a batch and returns candidate
adversarial images plus where it claims success; `checks.verify` then decides.

Minimization attacks (DeepFool, DDN, C&W, Boundary, Pointwise, Salt & Pepper, and
Gaussian noise which we run at growing radii) search for the smallest adversarial
perturbation; their norms give accuracy at every radius. Fixed-radius attacks (our
PGD and MIM, foolbox FGSM and PGD) search at the radius only.
"""

import contextlib
import dataclasses

import numpy as np
import tensorflow as tf

from msd_tf import threats as threats_lib
from msd_tf.attacks import apgd, mim, pgd
from msd_tf.attacks.sparse_rs import sparse_rs
from msd_tf.attacks.square import square
from msd_tf.evaluation import foolbox_compat

# Radii of the paper's evaluation (section 1).
PAPER_EPS = {
    "mnist": {"linf": 0.3, "l2": 2.0, "l1": 10.0},
    "cifar10": {"linf": 0.03, "l2": 0.5, "l1": 12.0},
}


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
    """

    name: str
    kind: str
    norm: str
    eps: float
    restarts: int = 1
    steps: int | None = None
    alpha: float | None = None
    only_robust: bool = False

    @property
    def minimizes(self) -> bool:
        return self.kind in MINIMIZATION_KINDS

    def label(self) -> str:
        after = " (+ earlier)" if self.only_robust else ""
        return f"{KINDS[self.kind]}{after} ({self.norm}, eps={self.eps:g})"


KINDS = {
    "pgd": "PGD (ours)", "mim": "MIM (ours)", "fgsm": "FGSM (foolbox)",
    "fb_pgd": "PGD (foolbox)", "gaussian": "Gaussian noise (foolbox)",
    "boundary": "Boundary (foolbox)", "deepfool": "DeepFool (foolbox)",
    "pointwise": "Pointwise (foolbox)", "ddn": "DDN (foolbox)", "cw": "C&W L2 (foolbox)",
    "salt_pepper": "Salt & Pepper (foolbox)", "apgd_ce": "APGD-CE (ours)",
    "apgd_t": "APGD-T (ours)", "square": "Square (ours)", "sparse_rs": "Sparse-RS (ours)",
}
# The attacks --suite=strong adds to the paper's (AutoAttack's, plus Sparse-RS for l_1).
ADDED_KINDS = ("apgd_ce", "apgd_t", "square", "sparse_rs")
MINIMIZATION_KINDS = {"boundary", "deepfool", "pointwise", "ddn", "cw", "salt_pepper",
                      "gaussian"}


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
    key = "mnist" if dataset in ("mnist", "fashion_mnist") else dataset
    radii = dict(PAPER_EPS[key], **(eps or {}))
    fast = budget == "fast"
    pgd_presets = {t.norm: t for t in threats_lib.presets(key, phase="test")}

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


def strong_additions(dataset: str, *, restarts: int = 10, eps: dict | None = None,
                     budget: str = "paper", apgd_steps: int = 100,
                     queries: int = 5000) -> list[AttackSpec]:
    """What `--suite=strong` (alias `--suite=autoattack`) adds, per norm and in this order,
    each on the examples still robust to everything before it in its norm:

      - APGD-CE (`restarts` random starts; AutoAttack standard: 1) and APGD-T (DLR loss,
        the 9 most likely wrong classes), `apgd_steps` iterations each (Croce and Hein
        2020; l_1-APGD with the exact ball-and-box projection, Croce and Hein 2021);
      - Square (l_inf, l_2; Andriushchenko et al. 2020) or Sparse-RS (l_1; Croce et al.
        2022), `queries` queries, no gradients: they catch gradient masking.

    With the defaults this is AutoAttack's "standard" version (APGD-CE, APGD-T, Square
    5000 queries) without FAB-T, for every norm, on top of the paper's attacks.
    """
    key = "mnist" if dataset in ("mnist", "fashion_mnist") else dataset
    radii = dict(PAPER_EPS[key], **(eps or {}))
    if budget == "fast":
        apgd_steps, queries = 10, 100
    specs = []
    for norm in ("linf", "l2", "l1"):
        r = radii[norm]
        specs.append(AttackSpec(f"apgd_ce_{norm}", "apgd_ce", norm, r, restarts,
                                steps=apgd_steps, only_robust=True))
        specs.append(AttackSpec(f"apgd_t_{norm}", "apgd_t", norm, r, 1, steps=apgd_steps,
                                only_robust=True))
        free = "sparse_rs" if norm == "l1" else "square"
        specs.append(AttackSpec(f"{free}_{norm}", free, norm, r, 1, steps=queries,
                                only_robust=True))
    return specs


def _fb_model(logits_fn):
    fb = foolbox_compat.get_foolbox()
    return fb.TensorFlowModel(logits_fn, bounds=(0.0, 1.0))


def _fb_attack(spec: AttackSpec, restart: int):
    fb = foolbox_compat.get_foolbox()
    a = fb.attacks
    steps = spec.steps
    if spec.kind == "fgsm":
        return a.LinfFastGradientAttack(random_start=restart > 0)
    if spec.kind == "fb_pgd":
        cls = a.LinfPGD if spec.norm == "linf" else a.L2PGD
        return cls(steps=steps or 40, random_start=True)
    if spec.kind == "deepfool":
        return a.L2DeepFoolAttack(steps=steps or 50)
    if spec.kind == "ddn":
        return a.DDNAttack(steps=steps or 100)
    if spec.kind == "cw":
        return a.L2CarliniWagnerAttack(binary_search_steps=5, steps=steps or 1000)
    if spec.kind == "boundary":
        # foolbox 3 draws one candidate per step; the paper's "25 trials per
        # iteration" (foolbox 2) is approximated by 25x as many steps.
        return a.BoundaryAttack(steps=steps or 5000)
    if spec.kind == "salt_pepper":
        return a.SaltAndPepperNoiseAttack(steps=steps or 1000)
    if spec.kind == "pointwise":
        return foolbox_compat.pointwise_attack(spec.norm)
    raise ValueError(f"Unknown foolbox attack kind {spec.kind!r}")


def _gaussian(logits_fn, x, y, spec: AttackSpec, seed: int):
    """Gaussian noise at growing l_2 radii (`steps` radii up to 4 eps); keeps the
    smallest radius that fools. Each radius is tried `restarts` times."""
    fb = foolbox_compat.get_foolbox()
    attack = fb.attacks.L2RepeatedAdditiveGaussianNoiseAttack(repeats=spec.restarts)
    radii = np.linspace(4 * spec.eps / (spec.steps or 100), 4 * spec.eps, spec.steps or 100)
    _seed_globals(seed, 0)
    _, clipped, success = attack(_fb_model(logits_fn), tf.constant(x), tf.constant(y),
                                 epsilons=list(radii))
    success = np.asarray(success)  # [radii, N]
    first = np.where(success.any(0), success.argmax(0), -1)
    clipped = np.stack([np.asarray(c) for c in clipped])  # [radii, N, ...]
    found = first >= 0
    x_adv = x.copy()
    x_adv[found] = clipped[first[found], np.flatnonzero(found)]
    return x_adv, found


def _from_salt_and_pepper(attack, fmodel, x, y, spec: AttackSpec):
    """Boundary and Pointwise need an adversarial starting point; foolbox aborts the
    whole batch when its initialization fails on any input. We start them from a
    Salt & Pepper run and attack only the examples it fooled (others: not found)."""
    fb = foolbox_compat.get_foolbox()
    init = fb.attacks.SaltAndPepperNoiseAttack(steps=min(spec.steps or 1000, 1000))
    _, start, ok = init(fmodel, tf.constant(x), tf.constant(y), epsilons=None)
    ok = np.array(ok, bool)  # a writable copy (asarray of a TF tensor is read-only)
    x_r = np.asarray(start, np.float32).copy()
    if ok.any():
        _, refined, success = attack(fmodel, tf.constant(x[ok]), tf.constant(y[ok]),
                                     epsilons=None, starting_points=tf.constant(x_r[ok]))
        x_r[ok] = np.asarray(refined, np.float32)
        ok[ok] = np.asarray(success, bool)
    return x_r, ok


def _seed_globals(seed: int, restart: int) -> None:
    """Seeds the global generators foolbox draws from (TensorFlow's: `ep.uniform`,
    `ep.normal`; NumPy's: Pointwise's permutations) for one restart."""
    s = (int(seed) * 1_000_003 + int(restart)) % (2**31 - 1)
    tf.random.set_seed(s)
    np.random.seed(s)


@contextlib.contextmanager
def _numpy_state_kept():
    """Leaves NumPy's global generator as the caller had it."""
    state = np.random.get_state()
    try:
        yield
    finally:
        np.random.set_state(state)


def run_attack(spec: AttackSpec, logits_fn, x: np.ndarray, y: np.ndarray, *, seed: int = 0):
    """Runs `spec` on one batch, deterministically for `seed`.

    Our attacks take `seed` as a stateless seed; foolbox's draw from TensorFlow's and
    NumPy's global generators, which are seeded from (`seed`, restart) before every
    restart (NumPy's global state is restored afterwards).

    Returns:
      `(x_adv, found)`: `[N, ...]` candidate images and `[N]` bool where the attack
      claims an adversarial example (at the radius for fixed-radius attacks, at any
      norm for minimization attacks). Over restarts, a minimization attack keeps per
      example the claimed example of smallest norm; a fixed-radius one keeps the
      first claimed success.
    """
    with _numpy_state_kept():
        return _run_attack(spec, logits_fn, np.asarray(x, np.float32),
                           np.asarray(y, np.int32), seed)


def _run_attack(spec: AttackSpec, logits_fn, x: np.ndarray, y: np.ndarray, seed: int):
    if len(x) == 0:
        return x, np.zeros(0, bool)
    if spec.kind in ("pgd", "mim", "apgd_ce", "apgd_t", "square", "sparse_rs"):
        threat = threats_lib.ThreatModel(spec.norm, spec.eps, spec.alpha or spec.eps / 10,
                                         spec.steps or 100, restarts=spec.restarts,
                                         random_start=spec.restarts > 1)
        if spec.kind == "pgd":
            x_adv = pgd(logits_fn, x, y, threat, seed=seed).numpy()
        elif spec.kind == "mim":
            x_adv = mim(logits_fn, x, y, threat, seed=seed).numpy()
        elif spec.kind == "square":
            x_adv = square(logits_fn, x, y, threat, n_queries=spec.steps or 5000,
                           seed=seed).numpy()
        elif spec.kind == "sparse_rs":
            x_adv = sparse_rs(logits_fn, x, y, threat, n_queries=spec.steps or 5000,
                              seed=seed).numpy()
        else:
            x_adv = apgd(logits_fn, x, y, threat, seed=seed,
                         loss="ce" if spec.kind == "apgd_ce" else "dlr_targeted").numpy()
        found = np.asarray(logits_fn(x_adv)).argmax(1) != y
        return x_adv, found
    if spec.kind == "gaussian":
        return _gaussian(logits_fn, x, y, spec, seed)
    fmodel = _fb_model(logits_fn)
    best = x.copy()
    best_found = np.zeros(len(x), bool)
    best_norm = np.full(len(x), np.inf)
    from msd_tf.evaluation.checks import lp_norms

    for r in range(spec.restarts):
        _seed_globals(seed, r)
        attack = _fb_attack(spec, r)
        if spec.kind in ("boundary", "pointwise"):
            x_r, ok = _from_salt_and_pepper(attack, fmodel, x, y, spec)
        else:
            epsilons = None if spec.minimizes else spec.eps
            _, clipped, success = attack(fmodel, tf.constant(x), tf.constant(y),
                                         epsilons=epsilons)
            x_r = np.asarray(clipped, np.float32)
            ok = np.array(success, bool)
        if spec.minimizes:
            n = np.where(ok, lp_norms(x_r, x, spec.norm), np.inf)
            take = ok & (n < best_norm)
            best_norm = np.where(take, n, best_norm)
        else:
            take = ok & ~best_found
        best[take] = x_r[take]
        best_found |= ok
        if not spec.minimizes and best_found.all():
            break
    return best, best_found
