"""Which layers an adapter compresses: skip rules with reasons, include/exclude globs, coverage.

Every ``nn.Linear`` and plain 1×1 convolution is compressible unless a rule skips it. Every
other linear-looking module (a strided or wide convolution, a transposed convolution) is
reported as skipped with the reason :func:`safesvd_core.plugin.linear_map` gives.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping, Sequence

import attrs
from torch import nn

from safesvd_core.plugin import ConfigError, count_parameters, in_mode_bank, is_compressible, linear_map


def pattern_tuple(value: object) -> tuple[str, ...]:
    """A converter: a sequence of non-empty strings (names or glob patterns) → tuple; a bare
    string is an error rather than a sequence of characters."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigError(f"expected a sequence of strings (names or glob patterns), got {value!r}")
    items = tuple(value)
    if not all(isinstance(item, str) and item for item in items):
        raise ConfigError(f"expected non-empty strings (names or glob patterns), got {list(items)!r}")
    return items


@attrs.frozen(kw_only=True)
class SkipRule:
    """Skip the modules whose qualified name matches one of ``patterns`` (globs), or for which
    ``when(module)`` is true, for ``reason``."""

    reason: str
    patterns: tuple[str, ...] = attrs.field(default=(), converter=pattern_tuple)
    when: Callable[[nn.Module], bool] | None = None

    def matches(self, name: str, module: nn.Module) -> bool:
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.patterns):
            return True
        return self.when is not None and bool(self.when(module))


def _is_scalar_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) and module.in_features == 1


#: Rules shared by the framework adapters (issue 5's "skipped by default" list).
TIME_CONDITIONING = SkipRule(
    reason="Linear(1, d) time/scalar conditioning: already rank 1, a factorisation saves nothing",
    when=_is_scalar_linear,
)
POSITION_BIAS = SkipRule(
    reason="relative-position-bias MLP: it maps a fixed coordinate table, not the field",
    patterns=("*continuous_position_bias_mlp*", "*cpb_mlp*"),
)
#: Conditioning layers (the generic adapter skips them unless ``conditioning=True``): their inputs
#: are a few scalars per sample (a date, a lead time, a noise level) that a calibration set barely
#: varies, so a solve fits them to the calibration's values (Aurora: rank 1 from two timestamps).
CONDITIONING = SkipRule(
    reason="conditioning (adaptive-norm modulation, time or lead-time embedding): its input barely "
    "varies over a calibration set, so its compression would fit the calibration's values; "
    "conditioning=True compresses it",
    patterns=(
        "*modulation*",
        "*adaLN*",
        "*adaln*",
        "*time_embed*",
        "*timestep_embed*",
        "*t_embedder*",
        "*time_mlp*",
        "*time_proj*",
        "*lead_time*",
    ),
)
NORMALISATION = SkipRule(
    reason="inside a normalisation layer (e.g. a conditional LayerNorm's scale/shift)",
    patterns=("*norm*.*",),
)


def recovery(*patterns: str) -> SkipRule:
    """The output head / patch-recovery rule for ``patterns``."""
    return SkipRule(
        reason="patch recovery / output head: few output channels, where a rank cut destroys the "
        "prediction (docs/BASELINES.md, 'Same layers for every recipe')",
        patterns=patterns,
    )


def embedding(*patterns: str) -> SkipRule:
    """The patch-embedding / lifting rule for ``patterns``."""
    return SkipRule(
        reason="patch embedding / lifting from the input channels: small fan-in", patterns=patterns
    )


@attrs.frozen(kw_only=True)
class Selection:
    """The compressible layer names (forward-agnostic module order) and the skipped ones with reasons."""

    compressible: tuple[str, ...]
    skipped: Mapping[str, str]


def _linear_like(module: nn.Module) -> bool:
    return isinstance(module, (nn.Linear, nn.modules.conv._ConvNd))


def select(
    model: nn.Module,
    rules: Sequence[SkipRule],
    *,
    include: Sequence[str] = ("*",),
    exclude: Sequence[str] = (),
    extra: Mapping[str, str] | None = None,
) -> Selection:
    """Apply ``extra`` (name → reason, adapter-specific), then ``rules``, then the user's globs."""
    extra = dict(extra or {})
    compressible: list[str] = []
    skipped: dict[str, str] = {}
    for name, module in model.named_modules():
        if name in extra:
            skipped[name] = extra[name]
            continue
        if not name or not _linear_like(module) or any(name.startswith(owner + ".") for owner in extra):
            continue
        if not is_compressible(module):
            try:
                linear_map(model, name)
            except ConfigError as error:
                skipped[name] = f"not a linear map over channels: {error}"
            continue
        rule = next((rule for rule in rules if rule.matches(name, module)), None)
        if rule is not None:
            skipped[name] = rule.reason
        elif not any(fnmatch.fnmatchcase(name, pattern) for pattern in include):
            skipped[name] = f"matches no include pattern ({', '.join(include)})"
        elif matched := [pattern for pattern in exclude if fnmatch.fnmatchcase(name, pattern)]:
            skipped[name] = f"excluded by pattern {matched[0]!r}"
        else:
            compressible.append(name)
    return Selection(compressible=tuple(compressible), skipped=skipped)


@attrs.frozen(kw_only=True)
class Kept:
    """Parameters outside the compressible weights, by the module that holds them: always kept."""

    module: str
    kind: str
    params: int


@attrs.frozen(kw_only=True)
class Coverage:
    """How much of a model the adapter can compress.

    ``min_ratio`` is the smallest ratio ``compress`` can meet: everything outside the
    compressible layers is kept, and each compressible layer costs at least ``min(m n, m + n)``
    (a Fourier mode nothing: the greedy allocator may drop it). ``kept`` names every module that
    holds parameters outside the compressible weights (raw ``Parameter``s, ``ParameterDict``s,
    embeddings, norms, biases), largest first: what bounds ``min_ratio`` from below.
    """

    total_params: int
    compressible_params: int
    min_params: int
    kept: tuple[Kept, ...] = ()

    @property
    def fraction(self) -> float:
        """Share of the parameters in compressible layers."""
        return self.compressible_params / self.total_params if self.total_params else 0.0

    @property
    def min_ratio(self) -> float:
        return self.min_params / self.total_params if self.total_params else 1.0

    def kept_lines(self, limit: int | None = 20) -> list[str]:
        """One line per module of :attr:`kept` (the ``limit`` largest): its parameters and share."""
        shown = self.kept if limit is None else self.kept[:limit]
        lines = [
            f"{item.module or '(model)'} ({item.kind}): {item.params:,} parameters "
            f"({100.0 * item.params / self.total_params:.2f} %)"
            for item in shown
        ]
        if len(shown) < len(self.kept):
            rest = sum(item.params for item in self.kept[len(shown) :])
            lines.append(f"… {len(self.kept) - len(shown)} more modules, {rest:,} parameters")
        return lines


def coverage(model: nn.Module, names: Iterable[str]) -> Coverage:
    """The :class:`Coverage` of compressing the layers ``names`` of ``model``."""
    total = count_parameters(model)
    dense = floor = 0
    weights = set()
    for name in names:
        view = linear_map(model, name)
        m, n = view.out_features, view.in_features
        dense += m * n
        floor += 0 if in_mode_bank(model, name) else min(m * n, m + n)
        weights.add(f"{name}.weight" if name else "weight")
    return Coverage(
        total_params=total,
        compressible_params=dense,
        min_params=total - dense + floor,
        kept=kept_parameters(model, weights),
    )


def kept_parameters(model: nn.Module, compressible_weights: set[str]) -> tuple[Kept, ...]:
    """The modules holding parameters other than ``compressible_weights``, largest first."""
    counts: dict[str, int] = {}
    for name, parameter in model.named_parameters():
        if name not in compressible_weights:
            owner = name.rpartition(".")[0]
            counts[owner] = counts.get(owner, 0) + parameter.numel()
    kept = [
        Kept(module=owner, kind=type(model.get_submodule(owner)).__name__, params=params)
        for owner, params in counts.items()
    ]
    return tuple(sorted(kept, key=lambda item: (-item.params, item.module)))
