"""Mutation score of the exercise checks, per exercise, from the catalogues in tests/mutants.

    .venv/bin/python benchmarks/mutation_score.py                 # in process, seed 0 (the notebooks' seed)
    .venv/bin/python benchmarks/mutation_score.py --seeds 0,1,99  # a mutant is killed only if killed on every seed
    .venv/bin/python benchmarks/mutation_score.py --seeds 0-19    # the README's figures: 20 seeds
    .venv/bin/python benchmarks/mutation_score.py --secure        # also through `grade --secure` (out of process)
    .venv/bin/python benchmarks/mutation_score.py -k attention    # only exercises whose name contains this
    .venv/bin/python benchmarks/mutation_score.py --hardcode      # could pasted seed-0 outputs pass?

Columns: ``killed`` = wrong implementations rejected / wrong implementations
(the mutation score); ``named`` = rejected with the intended message (the
mistake is named); ``accepted`` = correct variants passed / correct variants.
With ``--secure``, ``secure`` counts the same verdicts out of process on a
hidden seed (wrong ones failing + correct ones passing, out of those whose
source stands alone); a correct variant that calls the torch built-in the
exercise asks for (e.g. ``F.layer_norm`` in ``layer_norm``) is rejected there
by design and counted under ``policy``.
Exit status 1 if a wrong implementation survives, a correct one is rejected at any
seed, or fewer than 95 % of the wrong ones are named.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.mutants import load_all  # noqa: E402
from tfmcourse.checks import EXERCISES, CheckFailed, ExerciseNotAttempted  # noqa: E402


def _verdict(check, impl, seed: int) -> tuple[bool, str]:
    """(passed, message) of one check run, its printed line swallowed."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            check(impl, seed=seed)
        return True, ""
    except ExerciseNotAttempted as exc:
        return False, "NOT ATTEMPTED: " + str(exc)
    except CheckFailed as exc:
        return False, str(exc)
    except Exception as exc:
        return False, f"CHECK CRASHED: {type(exc).__name__}: {exc}"


def _secure_verdicts(mutants, seed: int | None):
    """Grade each stand-alone mutant through the secure grader: {label: (passed, rejected by policy)}."""
    from tests.grading.builders import impl_source, standalone, write_notebook
    from tfmcourse.grading.secure import extract, grade_notebook, policy

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, m in enumerate(mutants):
            if not standalone(m):
                continue
            src = impl_source(m.impl, m.exercise)
            ex = extract.extract([src])
            rejected = bool(policy.static_violations(ex, m.exercise, extract.closure(ex, m.exercise)))
            path = write_notebook(
                Path(tmp) / str(i) / f"{EXERCISES[m.exercise].lesson:02d}_m.ipynb", {m.exercise: src}
            )
            r = {e.name: e for e in grade_notebook(path, seed=seed).exercises}[m.exercise]
            out[m.label] = (r.status == "passed", rejected)
    return out


def _answers(e, seed: int) -> list[str] | None:
    """The reference's outputs for every call the check makes with ``seed`` (functions only)."""
    import torch

    def flat(x):
        if isinstance(x, torch.Tensor):
            return [(tuple(x.shape), str(x.dtype), x.detach().double().nan_to_num(7.7).reshape(-1).tolist())]
        if isinstance(x, (list, tuple)):
            return [y for v in x for y in flat(v)]
        if isinstance(x, dict):
            return [y for v in x.values() for y in flat(v)]
        return [x if isinstance(x, (int, float, bool, str, type(None))) else type(x).__name__]

    ref = e.reference_impl()
    if isinstance(ref, type):
        return None  # a class: its outputs depend on the weights the check loads
    seen: list[str] = []

    def recording(*args, **kwargs):
        out = ref(*args, **kwargs)
        seen.append(repr(flat(out)))
        return out

    ok, _ = _verdict(e.check, recording, seed)
    return seen if ok else None


def hardcodable(e, seeds=range(1, 11)) -> str:
    """How many other seeds' expected outputs all appear among seed 0's: a learner who pasted the
    outputs the notebook shows would pass the secure grader on those seeds."""
    base = _answers(e, 0)
    if base is None:
        return "n/a"
    hits = sum(1 for s in seeds if (o := _answers(e, s)) is not None and set(o) <= set(base))
    return f"{hits}/{len(seeds)}"


def _parse_seeds(text: str) -> list[int]:
    """``"0,3,7"`` or ``"0-19"`` (inclusive) or a mix of both."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part[1:]:
            lo, hi = part.split("-", 1)
            seeds += range(int(lo), int(hi) + 1)
        elif part:
            seeds.append(int(part))
    return seeds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--secure", action="store_true", help="also grade every mutant out of process")
    p.add_argument("-k", default="", help="only exercises whose name contains this")
    p.add_argument("-v", "--verbose", action="store_true", help="list survivors and misnamed mistakes")
    p.add_argument(
        "--hardcode",
        action="store_true",
        help="also show, per function exercise, for how many of seeds 1..10 pasting the outputs of "
        "seed 0 would pass (should be 0/10: the check's inputs must vary with the seed)",
    )
    args = p.parse_args(argv)
    seeds = _parse_seeds(args.seeds)
    catalogue = [m for m in load_all() if args.k.lower() in m.exercise.lower()]
    secure_v = _secure_verdicts(catalogue, None) if args.secure else {}

    header = f"{'exercise':<32} {'lesson':>6} {'killed':>9} {'named':>9} {'accepted':>9} {'score':>7}"
    if args.secure:
        header += f" {'secure':>9} {'policy':>7}"
    if args.hardcode:
        header += f" {'hardcode':>9}"
    print(header)
    print("-" * len(header))
    totals = dict(wrong=0, killed=0, named=0, correct=0, accepted=0)
    bad: list[str] = []
    for name, e in EXERCISES.items():
        if args.k.lower() not in name.lower():
            continue
        mine = [m for m in catalogue if m.exercise == name]
        wrong = [m for m in mine if not m.correct]
        right = [m for m in mine if m.correct]
        killed = named = accepted = 0
        for m in wrong:
            results = [_verdict(e.check, m.impl, s) for s in seeds]
            if all(not ok and not msg.startswith(("NOT ATTEMPTED", "CHECK CRASHED")) for ok, msg in results):
                killed += 1
                if all(m.phrase.lower() in msg.lower() for _, msg in results):
                    named += 1
                else:
                    bad.append(f"{name}: {m.label} rejected but not named ({m.phrase!r})")
            else:
                bad.append(f"{name}: {m.label} SURVIVES ({[msg[:80] for _, msg in results]})")
        for m in right:
            results = [_verdict(e.check, m.impl, s) for s in seeds]
            if all(ok for ok, _ in results):
                accepted += 1
            else:
                bad.append(f"{name}: correct {m.label} REJECTED: {[msg[:120] for _, msg in results]}")
        score = f"{100 * killed / len(wrong):.0f}%" if wrong else "n/a"
        line = (
            f"{name:<32} {e.lesson:>6} {killed:>4}/{len(wrong):<4} {named:>4}/{len(wrong):<4} "
            f"{accepted:>4}/{len(right):<4} {score:>7}"
        )
        if args.secure:
            sv = [(m, secure_v[m.label]) for m in mine if m.label in secure_v]
            ok = sum(1 for m, (passed, _) in sv if passed == m.correct)
            policy = sum(1 for m, (passed, pol) in sv if m.correct and not passed and pol)
            line += f" {ok:>4}/{len(sv):<4} {policy:>7}"
            for m, (passed, pol) in sv:
                if passed != m.correct and not (m.correct and pol):
                    bad.append(f"{name}: {m.label} {'passes' if passed else 'fails'} in secure mode")
        if args.hardcode:
            hc = hardcodable(e)
            line += f" {hc:>9}"
            if hc not in ("n/a", "0/10"):
                bad.append(
                    f"{name}: the outputs for seed 0 also answer {hc} other seeds (hard-coding passes)"
                )
        print(line)
        totals["wrong"] += len(wrong)
        totals["killed"] += killed
        totals["named"] += named
        totals["correct"] += len(right)
        totals["accepted"] += accepted
    print("-" * len(header))
    w = totals["wrong"] or 1
    print(
        f"{'all exercises':<32} {'':>6} {totals['killed']:>4}/{totals['wrong']:<4} "
        f"{totals['named']:>4}/{totals['wrong']:<4} {totals['accepted']:>4}/{totals['correct']:<4} "
        f"{100 * totals['killed'] / w:>6.1f}%"
    )
    missing = [
        n for n in EXERCISES if args.k.lower() in n.lower() and not any(m.exercise == n for m in catalogue)
    ]
    if missing:
        print(f"no catalogue yet for: {', '.join(missing)}")
    print(f"seeds: {seeds}")
    if bad and args.verbose:
        print("\n".join(["", "problems:"] + [f"  {b}" for b in bad]))
    elif bad:
        print(f"{len(bad)} problem(s); run with -v to list them")
    named_share = totals["named"] / w
    print(f"named: {100 * named_share:.1f}% of the wrong implementations (target ≥ 95%)")
    failing = any("SURVIVES" in b or "REJECTED" in b or "secure mode" in b for b in bad)
    return 1 if failing or named_share < 0.95 else 0


if __name__ == "__main__":
    sys.exit(main())
