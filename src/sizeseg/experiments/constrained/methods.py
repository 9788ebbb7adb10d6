"""The rows of Table 1: each method's loss terms and the kind of bounds its images carry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from sizeseg.experiments.constrained.profiles import Profile, penalty_weight


@dataclass(frozen=True)
class Method:
    """One row of Table 1: its loss terms and the bounds its images carry."""

    key: str
    label: str
    bounds: str  # none | proposals-loose | subject-upper | upper-loose | subject | approx-size
    terms: Callable[[Profile], list]
    paper_dsc: float | None = None
    paper_ms: float | None = None
    full_masks: bool = False
    size_bounds: str | None = None  # kind of the bounds on the discrete size (batch["size_bounds"]), if any


def _terms_partial_ce(p: Profile) -> list:
    from sizeseg.training.constrained_terms import PartialCETerm

    return [PartialCETerm()]


def _terms_proposals(p: Profile) -> list:
    """CE against Pathak's latent distribution (labelled pixels fixed in it), the only term."""
    from sizeseg.training.constrained_terms import ProposalTerm

    return [ProposalTerm(iterations=p.proposal_iterations)]


def _terms_proposals_pce(p: Profile) -> list:
    """The proposals plus the partial CE of the other weak rows (labelled pixels weigh as there); ours."""
    from sizeseg.training.constrained_terms import PartialCETerm, ProposalTerm

    return [PartialCETerm(), ProposalTerm(iterations=p.proposal_iterations)]


def _terms_penalty(p: Profile) -> list:
    from sizeseg.training.constrained_terms import PartialCETerm, SizePenaltyTerm

    return [PartialCETerm(), SizePenaltyTerm(weight=penalty_weight(p))]


def _terms_log_barrier(p: Profile) -> list:
    from sizeseg.training.constrained_terms import LogBarrierTerm, PartialCETerm

    return [PartialCETerm(), LogBarrierTerm(weight=1e-3, t=5.0, t_factor=1.1)]


def _terms_kl(p: Profile) -> list:
    from sizeseg.training.constrained_terms import KLSizeTerm, PartialCETerm

    return [PartialCETerm(), KLSizeTerm(weight=1.0)]


def _terms_discrete(p: Profile) -> list:
    from sizeseg.training.constrained_terms import DiscreteSizeBoundTerm, PartialCETerm

    return [PartialCETerm(), DiscreteSizeBoundTerm(weight=1e-3)]


def _terms_penalty_discrete(p: Profile) -> list:
    """The two-bound soft penalty on the pixel count plus the discrete size on its own bounds (ours)."""
    from sizeseg.training.constrained_terms import DiscreteSizeBoundTerm

    return _terms_penalty(p) + [DiscreteSizeBoundTerm(weight=1e-3, bounds_key="size_bounds")]


def _terms_full(p: Profile) -> list:
    """CE on the masks (the paper's), plus a soft Dice where the profile asks (``full_dice``).

    Without the Dice, the batched U-Net of the cpu profile predicted no LV for its first ~15 of 30
    epochs (CE alone is dominated by the background; results/constrained/README.md).
    """
    from sizeseg.training.loss_terms import BCETerm, DiceTerm

    return [BCETerm(), DiceTerm()] if p.full_dice else [BCETerm()]


METHODS: tuple[Method, ...] = (
    Method("partial_ce", "Partial cross-entropy", "none", _terms_partial_ce, 0.0721, 10.0),
    Method("proposals_loose", "Proposals, one bound (loose: N/6)", "proposals-loose", _terms_proposals, 0.6124, 15.0),
    Method("proposals_tight", "Proposals, one bound (tight)", "subject-upper", _terms_proposals, 0.0659, 15.0),
    Method("proposals_loose_pce", "Proposals, one bound (loose: N/6) + partial CE (ours, not the paper's)",
           "proposals-loose", _terms_proposals_pce, None, None),
    Method("size_upper_loose", "CE + size loss, one bound (loose: 10000)", "upper-loose", _terms_penalty, 0.8107, 10.0),
    Method("size_upper_tight", "CE + size loss, one bound (tight)", "subject-upper", _terms_penalty, 0.8189, 10.0),
    Method("size_two_bounds", "CE + size loss, two bounds (tight)", "subject", _terms_penalty, 0.8415, 10.0),
    Method("log_barrier", "CE + log-barrier, two bounds (tight)", "subject", _terms_log_barrier),
    Method("kl_size", "CE + KL to approximate sizes (+-10 %)", "approx-size", _terms_kl),
    Method("discrete_size", "CE + discrete size (SizeLoss, paper 1), two bounds (tight)", "size-subject", _terms_discrete),
    Method("size_two_bounds_discrete", "CE + size loss, two bounds (tight) + discrete size (SizeLoss, paper 1; ours)",
           "subject", _terms_penalty_discrete, size_bounds="size-subject"),
    Method("full", "Full supervision (CE on masks)", "none", _terms_full, 0.9284, 10.0, full_masks=True),
)
METHOD_KEYS = tuple(m.key for m in METHODS)
#: Names of the loss terms the methods use (what --term-weight may name).
TERM_NAMES = ("partial_ce", "proposals", "size_penalty", "log_barrier", "kl_size", "discrete_size", "bce", "dice")


def method_terms(method: Method, profile: Profile) -> list:
    """The method's loss terms with the profile's weight overrides applied (by term name)."""
    terms = method.terms(profile)
    for name, weight in profile.term_weights:
        for term in terms:
            if term.name == name:
                term.weight = float(weight)
    return terms


def parse_term_weights(items: Sequence[str] | None) -> tuple[tuple[str, float], ...]:
    """``["discrete_size=1", ...]`` -> ``(("discrete_size", 1.0), ...)``; errors name ``--term-weight``.

    Example:
        >>> parse_term_weights(["kl_size=0.5"])
        (('kl_size', 0.5),)
    """
    out = []
    for item in items or ():
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in TERM_NAMES:
            raise ValueError(f"--term-weight: expected NAME=WEIGHT with NAME one of {', '.join(TERM_NAMES)}, got {item!r}")
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"--term-weight: expected a number after '=', got {item!r}") from None
        if not weight >= 0 or weight == float("inf"):
            raise ValueError(f"--term-weight: expected a finite weight >= 0, got {item!r}")
        out.append((name, weight))
    return tuple(out)


def check_methods(methods: Sequence[str] | None) -> list[Method]:
    if methods is None:
        return list(METHODS)
    unknown = [m for m in methods if m not in METHOD_KEYS]
    if unknown:
        raise ValueError(f"methods: unknown {unknown}; expected some of {list(METHOD_KEYS)}")
    by_key = {m.key: m for m in METHODS}
    return [by_key[k] for k in dict.fromkeys(methods)]  # in the order given
