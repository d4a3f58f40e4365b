"""A table of evidence estimates for several models and estimators, with Bayes factors."""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from zdx_base import checks


class EvidenceEstimate(NamedTuple):
    """One estimate of a model's log evidence.

    Attributes
    ----------
    estimator : str
        What made it: ``"laplace"``, ``"laplace+is"``, ``"nested_sampling"``,
        ``"variational+is"``, ``"elbo"``...
    log_evidence : float
        The estimate of ``log Z``.
    error : float or None
        Its standard error (None when the estimator gives none, as the plain Laplace
        evidence).
    bound : bool
        True for a lower bound (the ELBO) rather than an estimate: shown, but not checked
        against the others.
    reliable : bool
        False when the estimator's own diagnostic (a Pareto k-hat above 0.7) says the
        estimate cannot be trusted: shown, but not checked against the others.
    """

    estimator: str
    log_evidence: float
    error: float | None = None
    bound: bool = False
    reliable: bool = True


class ComparisonRow(NamedTuple):
    """A row of :class:`Comparison`: one estimate of one model."""

    model: str
    estimator: str
    log_evidence: float
    error: float | None
    log_bayes_factor: float
    note: str


class Comparison(NamedTuple):
    """What :func:`compare` returns; ``str(comparison)`` is the table.

    Attributes
    ----------
    rows : tuple of ComparisonRow
        Every estimate, with its log Bayes factor against the reference model's log Z.
    log_evidence : dict
        ``model -> (log Z, error)``: the estimate used for each model's Bayes factors (the
        one with the smallest error, else the first).
    log_bayes_factors : dict
        ``model -> log B`` against ``reference``: ``log Z_model - log Z_reference``.
    reference : str
        The model the Bayes factors are taken against.
    disagreements : tuple of str
        One line per pair of estimates of the same model that differ by more than
        ``nsigma`` combined errors (each also issued as a warning).
    """

    rows: tuple[ComparisonRow, ...]
    log_evidence: dict[str, tuple[float, float | None]]
    log_bayes_factors: dict[str, float]
    reference: str
    disagreements: tuple[str, ...]

    def __str__(self) -> str:
        header = ("model", "estimator", "log Z", "error", "log B", "")
        lines = [
            (
                r.model,
                r.estimator,
                f"{r.log_evidence:.4f}",
                "-" if r.error is None else f"{r.error:.4f}",
                f"{r.log_bayes_factor:+.4f}",
                r.note,
            )
            for r in self.rows
        ]
        widths = [max(len(str(c)) for c in col) for col in zip(header, *lines)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        out = [fmt.format(*header).rstrip(), fmt.format(*["-" * w for w in widths]).rstrip()]
        out += [fmt.format(*line).rstrip() for line in lines]
        out.append(f"log B = log Z - log Z[{self.reference!r}]")
        out += [f"warning: {d}" for d in self.disagreements]
        return "\n".join(out)


def _estimates(model: str, value: Any) -> list[EvidenceEstimate]:
    if isinstance(value, EvidenceEstimate):
        return [value]
    if hasattr(value, "evidence_estimates"):
        rows = list(value.evidence_estimates())
        if not rows:
            problem = getattr(value, "evidence_problem", None) or "it has no evidence"
            raise ValueError(
                f"compare: the result given for model {model!r} has no evidence: {problem}."
            )
        return rows
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return [EvidenceEstimate("given", float(value), None)]
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, numbers.Real) or v is None for v in value)
    ):
        return [
            EvidenceEstimate(
                "given", float(value[0]), None if value[1] is None else float(value[1])
            )
        ]
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [row for item in value for row in _estimates(model, item)]
    raise TypeError(
        f"compare: the value for model {model!r} must be a result of laplace, nuts, "
        "nested_sampling or variational, an EvidenceEstimate, a log Z number, a "
        f"(log Z, error) pair, or a list of these; got {type(value).__name__}."
    )


def compare(
    results: Mapping[str, Any], *, reference: str | None = None, nsigma: float = 3.0
) -> Comparison:
    """Compare the evidence of several models, each estimated by one or more estimators.

    Parameters
    ----------
    results : mapping
        ``model name -> estimates``. An estimate is a result of :func:`laplace`,
        :func:`nested_sampling` or :func:`variational` (each gives its own estimates,
        e.g. Laplace and its importance correction), an :class:`EvidenceEstimate`, a
        ``log Z`` number or a ``(log Z, error)`` pair; give a list for several estimators
        of the same model.
    reference : str, optional
        The model the Bayes factors are taken against; default the model with the largest
        log evidence.
    nsigma : float, default 3.0
        Two estimates of the same model disagree when they differ by more than
        ``nsigma * sqrt(err_1^2 + err_2^2)`` (a missing error counts as 0; pairs with no
        error at all, lower bounds and estimates flagged unreliable are not checked).

    Returns
    -------
    Comparison
        The table (``str(...)``), the log Bayes factors and the disagreements.

    Raises
    ------
    TypeError, ValueError
        If ``results`` is empty or holds something that is not an estimate, a result
        has no evidence (no proper prior), an estimate is not finite, or ``reference`` is
        not one of the models.

    Warns
    -----
    UserWarning
        For every pair of estimates of the same model that disagree.

    Examples
    --------
    >>> table = compare({"one line": (-10.2, 0.1), "two lines": [(-12.0, 0.1), -12.1]})
    >>> round(table.log_bayes_factors["two lines"], 3)
    -1.8
    """
    if not isinstance(results, Mapping) or not results:
        raise ValueError(
            "compare: `results` must be a non-empty mapping {model name: estimates}, got "
            f"{results!r}."
        )
    nsigma = checks.check_number("compare", "nsigma", nsigma, positive=True)
    per_model = {}
    for model, value in results.items():
        rows = _estimates(str(model), value)
        for row in rows:
            if not math.isfinite(row.log_evidence) or (
                row.error is not None and not math.isfinite(row.error)
            ):
                raise ValueError(
                    f"compare: the {row.estimator} estimate of model {model!r} is not finite "
                    f"(log Z = {row.log_evidence}, error = {row.error})."
                )
        per_model[str(model)] = rows

    chosen = {}
    for model, rows in per_model.items():
        candidates = (
            [r for r in rows if not r.bound and r.reliable]
            or [r for r in rows if not r.bound]
            or rows
        )
        with_error = [r for r in candidates if r.error is not None]
        best = min(with_error, key=lambda r: r.error) if with_error else candidates[0]
        chosen[model] = (best.log_evidence, best.error)

    if reference is None:
        reference = max(chosen, key=lambda m: chosen[m][0])
    elif reference not in chosen:
        raise ValueError(
            f"compare: `reference` must be one of the models {sorted(chosen)}, got {reference!r}."
        )
    ref_logz = chosen[reference][0]
    bayes = {m: v[0] - ref_logz for m, v in chosen.items()}

    disagreements = []
    for model, rows in per_model.items():
        checked = [r for r in rows if not r.bound and r.reliable]
        for i, a in enumerate(checked):
            for b in checked[i + 1 :]:
                if a.error is None and b.error is None:
                    continue
                sigma = math.hypot(a.error or 0.0, b.error or 0.0)
                diff = abs(a.log_evidence - b.log_evidence)
                if diff > nsigma * sigma:
                    disagreements.append(
                        f"model {model!r}: {a.estimator} ({a.log_evidence:.4f}) and "
                        f"{b.estimator} ({b.log_evidence:.4f}) differ by {diff:.4f}, more "
                        f"than {nsigma:g} x their combined error {sigma:.4f}"
                    )
    for line in disagreements:
        warnings.warn(f"compare: {line}.", UserWarning, stacklevel=2)

    table = []
    for model, rows in per_model.items():
        for r in rows:
            notes = []
            if r.bound:
                notes.append("lower bound")
            if not r.reliable:
                notes.append("unreliable (pareto k > 0.7)")
            if (r.log_evidence, r.error) == chosen[model]:
                notes.append("used")
            table.append(
                ComparisonRow(
                    model,
                    r.estimator,
                    r.log_evidence,
                    r.error,
                    r.log_evidence - ref_logz,
                    ", ".join(notes),
                )
            )
    return Comparison(tuple(table), chosen, bayes, reference, tuple(disagreements))
