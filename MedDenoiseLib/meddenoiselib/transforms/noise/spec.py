"""Noise specifications: which noise model, at what level, in whose units.

One text form serves ``simulate --noise``, ``train --noise``, the benchmarks and model cards::

    gaussian:25            σ 25 on the 0-255 scale of the image normalized to [0, 1]
    gaussian:3%            σ = 3 % of the image's 99th-percentile intensity
    rician:25 | rician:3%  magnitude MR, one coil (Rician); σ of each of the real and imaginary parts
    noncentral-chi:3%,8    magnitude MR, root-sum-of-squares over 8 coils (non-central chi, 16 degrees of freedom)
    speckle:0.2            ultrasound: multiplicative Gamma(L, 1/L) speckle, relative σ 0.2 (L = 1/σ² looks)
    poisson-gaussian:100,2 X-ray/microscopy: Poisson with 100 counts at intensity 1, plus 2 counts of read noise
    poisson:100            Poisson only (poisson-gaussian with no read noise)
    ct-lowdose:0.25        CT in HU: projection-domain noise at a quarter of the full dose
    ct-lowdose:25HU        ... at the dose that puts 25 HU of noise in the body (median over the body)
    ct-lowdose:0.25,kernel=hann,views=540,counts=1e6,electronic=10,method=fast
    ct-lowdose:25HU,grain=2  noise grain 2 pixels wide (a detector resolving 2 pixels: small-FOV reconstructions)

Training draws a level per sample from a range: ``gaussian:0-50``, ``ct-lowdose:5HU-100HU``, ``speckle:0.05-0.5``.
Ranges of ``ct-lowdose`` in HU and of Poisson peaks are drawn log-uniformly (equal weight per octave of noise).
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field

from .ct_lowdose import CTScanner
from .ct_projection import RECONSTRUCTION_KERNELS

__all__ = ["NoiseKind", "LevelUnit", "NoiseSpec", "NoiseRange", "parse_noise_spec", "parse_noise_range"]


class NoiseKind(str, enum.Enum):
    """The noise models."""

    GAUSSIAN = "gaussian"
    RICIAN = "rician"
    NONCENTRAL_CHI = "noncentral-chi"
    SPECKLE = "speckle"
    POISSON_GAUSSIAN = "poisson-gaussian"
    CT_LOWDOSE = "ct-lowdose"


class LevelUnit(str, enum.Enum):
    """What a level number means.

    - ``scale255``: σ on the 0-255 scale of the image normalized to [0, 1] (the seed papers' convention).
    - ``percent``: σ as a percentage of the image's 99th-percentile intensity (MR: noise relative to signal).
    - ``relative``: a dimensionless factor (speckle σ).
    - ``counts``: photon counts at normalized intensity 1 (Poisson peak).
    - ``dose``: fraction of the full CT dose.
    - ``hu``: CT noise standard deviation in HU (median over the body).
    """

    SCALE255 = "scale255"
    PERCENT = "percent"
    RELATIVE = "relative"
    COUNTS = "counts"
    DOSE = "dose"
    HU = "hu"


_ALIASES = {"poisson": NoiseKind.POISSON_GAUSSIAN, "nc-chi": NoiseKind.NONCENTRAL_CHI, "ct": NoiseKind.CT_LOWDOSE}
_DEFAULT_LEVEL = {
    NoiseKind.GAUSSIAN: "25",
    NoiseKind.RICIAN: "25",
    NoiseKind.NONCENTRAL_CHI: "25",
    NoiseKind.SPECKLE: "0.2",
    NoiseKind.POISSON_GAUSSIAN: "100",
    NoiseKind.CT_LOWDOSE: "0.25",
}
_CT_OPTIONS = {"kernel", "views", "counts", "electronic", "grain", "method"}
_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(%|hu|HU|Hu)?\s*$")


@dataclass(frozen=True)
class NoiseSpec:
    """One noise model at one level.

    Attributes:
        kind: the model.
        level: the main parameter, in ``unit``.
        unit: what ``level`` means (see :class:`LevelUnit`).
        coils: receiver coils combined by root-sum-of-squares (``noncentral-chi``; 1 for Rician).
        read_noise: Gaussian read noise in counts (``poisson-gaussian``).
        scanner: the simulated CT scanner (``ct-lowdose``).
        method: ``"projection"`` (Poisson noise on line integrals, FBP; exact, ~10 s per 512² slice) or ``"fast"``
            (image-domain approximation with the same noise power spectrum and local level) for ``ct-lowdose``.
    """

    kind: NoiseKind
    level: float
    unit: LevelUnit
    coils: int = 1
    read_noise: float = 0.0
    scanner: CTScanner = field(default_factory=CTScanner)
    method: str = "projection"

    def __str__(self) -> str:
        suffix = {LevelUnit.PERCENT: "%", LevelUnit.HU: "HU"}.get(self.unit, "")
        text = f"{self.kind.value}:{self.level:g}{suffix}"
        if self.kind == NoiseKind.NONCENTRAL_CHI:
            text += f",{self.coils}"
        elif self.kind == NoiseKind.POISSON_GAUSSIAN and self.read_noise:
            text += f",{self.read_noise:g}"
        elif self.kind == NoiseKind.CT_LOWDOSE:
            default = CTScanner()
            for name, option in (
                ("kernel", "kernel"),
                ("views", "views"),
                ("full_dose_counts", "counts"),
                ("electronic_noise", "electronic"),
                ("grain", "grain"),
            ):
                value = getattr(self.scanner, name)
                if value != getattr(default, name):
                    text += f",{option}={value:g}" if isinstance(value, float) else f",{option}={value}"
            if self.method != "projection":
                text += f",method={self.method}"
        return text

    def describe(self) -> str:
        """A human-readable line with the units, for logs and model cards."""
        units = {
            LevelUnit.SCALE255: "sigma on the 0-255 scale of the normalized image",
            LevelUnit.PERCENT: "sigma in % of the image's 99th percentile",
            LevelUnit.RELATIVE: "relative sigma of the multiplicative factor",
            LevelUnit.COUNTS: "photon counts at normalized intensity 1",
            LevelUnit.DOSE: "fraction of the full dose",
            LevelUnit.HU: "noise std in HU (median over the body)",
        }[self.unit]
        return f"{self} ({units})"


@dataclass(frozen=True)
class NoiseRange:
    """A noise model with a range of levels to draw from during training.

    Attributes:
        kind: the model.
        low: smallest level, in ``unit``.
        high: largest level, in ``unit``.
        unit: as for :class:`NoiseSpec`.
        coils: ``noncentral-chi`` coils (1 = Rician).
        read_noise: Poisson-Gaussian read noise in counts.
        log_uniform: draw ``log(level)`` uniformly (noise std spans decades: CT in HU, Poisson peaks).
        kernels: CT reconstruction kernels drawn per sample (scanner variety); the first is the reference.
        views: CT views drawn per sample, ``(low, high)``.
        electronic: CT electronic noise drawn per sample, ``(low, high)`` counts.
        grain: CT resolution cell drawn per sample (log-uniform), ``(low, high)`` pixels (see ``CTScanner``).
    """

    kind: NoiseKind
    low: float
    high: float
    unit: LevelUnit
    coils: int = 1
    read_noise: float = 0.0
    log_uniform: bool = False
    kernels: tuple[str, ...] = ("shepp-logan",)
    views: tuple[int, int] = (720, 720)
    electronic: tuple[float, float] = (8.0, 8.0)
    grain: tuple[float, float] = (1.0, 1.0)

    def __str__(self) -> str:
        suffix = {LevelUnit.PERCENT: "%", LevelUnit.HU: "HU"}.get(self.unit, "")
        text = f"{self.kind.value}:{self.low:g}{suffix}-{self.high:g}{suffix}"
        if self.kind == NoiseKind.NONCENTRAL_CHI:
            text += f",{self.coils}"
        return text

    def scanners(self) -> list[CTScanner]:
        """``ct-lowdose``: one scanner per kernel, views and electronic noise spread over their ranges (the
        scanners of the stored projection-domain training realizations); empty for other models."""
        if self.kind != NoiseKind.CT_LOWDOSE:
            return []
        count = len(self.kernels)
        fractions = [(i + 0.5) / count for i in range(count)]
        return [
            CTScanner(
                views=int(round((self.views[0] + f * (self.views[1] - self.views[0])) / 180) * 180) or 180,
                kernel=kernel,
                electronic_noise=self.electronic[0] + f * (self.electronic[1] - self.electronic[0]),
            )
            for kernel, f in zip(self.kernels, fractions, strict=True)
        ]

    def at(self, level: float, grain: float = 1.0) -> NoiseSpec:
        """The fixed-level spec of this range (e.g. for validation); ``grain``: the CT noise grain in pixels."""
        scanner = CTScanner(
            kernel=self.kernels[0], views=self.views[0], electronic_noise=self.electronic[0], grain=grain
        )
        return NoiseSpec(self.kind, float(level), self.unit, self.coils, self.read_noise, scanner, method="fast")


def _number(text: str, spec: str) -> tuple[float, str]:
    match = _NUMBER.match(text)
    if not match:
        raise ValueError(f"noise level {text.strip()!r} in {spec!r} is not a number")
    value = float(match.group(1))
    if not math.isfinite(value):
        raise ValueError(f"noise level in {spec!r} must be finite")
    return value, (match.group(2) or "").lower()


def _split(spec: str) -> tuple[NoiseKind, list[str], dict[str, str]]:
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("empty noise specification")
    kind_text, _, rest = spec.strip().partition(":")
    name = kind_text.strip().lower()
    try:
        kind = _ALIASES.get(name) or NoiseKind(name)
    except ValueError:
        names = ", ".join([k.value for k in NoiseKind] + sorted(_ALIASES))
        raise ValueError(f"unknown noise model {kind_text.strip()!r}; choose one of {names}") from None
    positional, options = [], {}
    for part in (p.strip() for p in rest.split(",")) if rest.strip() else []:
        if not part:
            raise ValueError(f"empty field in noise specification {spec!r}")
        if "=" in part:
            key, _, value = part.partition("=")
            options[key.strip().lower()] = value.strip()
        else:
            positional.append(part)
    if options and kind != NoiseKind.CT_LOWDOSE:
        raise ValueError(f"{kind.value} takes no key=value options (got {', '.join(options)})")
    unknown = set(options) - _CT_OPTIONS
    if unknown:
        raise ValueError(
            f"unknown ct-lowdose option(s) {', '.join(sorted(unknown))}; choose from {', '.join(sorted(_CT_OPTIONS))}"
        )
    if not positional:
        positional = [_DEFAULT_LEVEL[kind]]
    if name == "poisson" and len(positional) > 1:
        raise ValueError(f"'poisson' takes only the peak; use poisson-gaussian:PEAK,READ for read noise ({spec!r})")
    return kind, positional, options


def _unit(kind: NoiseKind, suffix: str, spec: str) -> LevelUnit:
    if kind in (NoiseKind.GAUSSIAN, NoiseKind.RICIAN, NoiseKind.NONCENTRAL_CHI):
        if suffix == "hu":
            raise ValueError(f"{kind.value} levels are on the 0-255 scale or in % (got HU in {spec!r})")
        return LevelUnit.PERCENT if suffix == "%" else LevelUnit.SCALE255
    if suffix and not (kind == NoiseKind.CT_LOWDOSE and suffix == "hu"):
        raise ValueError(f"unit {suffix!r} is not valid for {kind.value} in {spec!r}")
    if kind == NoiseKind.CT_LOWDOSE:
        return LevelUnit.HU if suffix == "hu" else LevelUnit.DOSE
    return {NoiseKind.SPECKLE: LevelUnit.RELATIVE, NoiseKind.POISSON_GAUSSIAN: LevelUnit.COUNTS}[kind]


def _check_level(kind: NoiseKind, unit: LevelUnit, value: float, spec: str, allow_zero: bool) -> None:
    limits = {
        LevelUnit.SCALE255: (0.0, 1000.0),
        LevelUnit.PERCENT: (0.0, 100.0),
        LevelUnit.RELATIVE: (0.0, 2.0),
        LevelUnit.COUNTS: (0.0, 1e9),
        LevelUnit.DOSE: (0.0, 100.0),
        LevelUnit.HU: (0.0, 2000.0),
    }[unit]
    positive_only = unit in (LevelUnit.COUNTS, LevelUnit.DOSE, LevelUnit.HU, LevelUnit.RELATIVE) or not allow_zero
    if value < limits[0] or value > limits[1] or (positive_only and value == 0):
        low = "above 0" if positive_only else f"at least {limits[0]:g}"
        raise ValueError(f"{kind.value} level in {spec!r} must be {low} and at most {limits[1]:g}, got {value:g}")


def _ct_scanner(options: dict[str, str], spec: str) -> tuple[CTScanner, str]:
    values: dict = {}
    method = options.get("method", "projection").lower()
    if method not in ("projection", "fast"):
        raise ValueError(f"ct-lowdose method must be 'projection' or 'fast', got {method!r} in {spec!r}")
    if "kernel" in options:
        kernel = options["kernel"].lower()
        if kernel not in RECONSTRUCTION_KERNELS:
            choices = ", ".join(RECONSTRUCTION_KERNELS)
            raise ValueError(f"unknown CT kernel {kernel!r} in {spec!r}; choose one of {choices}")
        values["kernel"] = kernel
    for key, name in (
        ("views", "views"),
        ("counts", "full_dose_counts"),
        ("electronic", "electronic_noise"),
        ("grain", "grain"),
    ):
        if key in options:
            number, suffix = _number(options[key], spec)
            if suffix:
                raise ValueError(f"ct-lowdose {key} takes a plain number in {spec!r}")
            values[name] = int(number) if key == "views" else number
            if key == "views" and number != int(number):
                raise ValueError(f"ct-lowdose views must be an integer in {spec!r}")
    try:
        return CTScanner(**values), method
    except ValueError as exc:
        raise ValueError(f"{spec!r}: {exc}") from None


def _second(kind: NoiseKind, positional: list[str], spec: str) -> tuple[int, float]:
    if len(positional) > 2 or (
        len(positional) == 2 and kind not in (NoiseKind.NONCENTRAL_CHI, NoiseKind.POISSON_GAUSSIAN)
    ):
        raise ValueError(f"too many values in noise specification {spec!r}")
    coils, read = 1, 0.0
    if kind == NoiseKind.NONCENTRAL_CHI:
        if len(positional) < 2:
            raise ValueError(f"noncentral-chi needs SIGMA,COILS (e.g. noncentral-chi:3%,8), got {spec!r}")
        number, suffix = _number(positional[1], spec)
        if suffix or number != int(number) or not 1 <= number <= 128:
            raise ValueError(f"noncentral-chi coils must be an integer from 1 to 128 in {spec!r}")
        coils = int(number)
    elif kind == NoiseKind.RICIAN:
        coils = 1
    elif kind == NoiseKind.POISSON_GAUSSIAN and len(positional) == 2:
        read, suffix = _number(positional[1], spec)
        if suffix or not 0 <= read <= 1e6:
            raise ValueError(f"poisson-gaussian read noise must be a number of counts in [0, 1e6] in {spec!r}")
    return coils, read


def parse_noise_spec(spec: str) -> NoiseSpec:
    """Parse ``KIND:LEVEL[,...]`` (see the module docstring for every form).

    Raises:
        ValueError: unknown model, option or unit, a non-finite or out-of-range number; the message quotes
            the specification.
    """
    kind, positional, options = _split(spec)
    if re.search(r"[0-9%uU]-[0-9.]", positional[0]):
        raise ValueError(f"{spec!r} is a range; give one level here (ranges are for training)")
    level, suffix = _number(positional[0], spec)
    unit = _unit(kind, suffix, spec)
    _check_level(kind, unit, level, spec, allow_zero=True)
    coils, read = _second(kind, positional, spec)
    scanner, method = _ct_scanner(options, spec) if kind == NoiseKind.CT_LOWDOSE else (CTScanner(), "projection")
    return NoiseSpec(kind, level, unit, coils, read, scanner, method)


def parse_noise_range(spec: str) -> NoiseRange:
    """Parse a training range ``KIND:LOW-HIGH[,...]`` (or a single level ``KIND:LEVEL``).

    CT ranges may vary the scanner per sample: ``ct-lowdose:5HU-100HU,kernel=shepp-logan|hann|ramp,
    views=540|1080,electronic=4|12,grain=1|3`` (``|`` separates the choices for kernels and the bounds for views,
    electronic noise and the noise grain in pixels).
    """
    kind_text, _, rest = spec.strip().partition(":")
    first, _, tail = rest.partition(",")
    bounds = re.split(r"(?<=[0-9%uU])-(?=[0-9.])", first.strip()) if first.strip() else []
    if len(bounds) > 2:
        raise ValueError(f"a range is LOW-HIGH, got {first!r} in {spec!r}")
    ct_choices: dict[str, list[str]] = {}
    plain_tail = []
    for part in (p.strip() for p in tail.split(",")) if tail.strip() else []:
        key, eq, value = part.partition("=")
        if eq and "|" in value:
            ct_choices[key.strip().lower()] = [v.strip() for v in value.split("|")]
            plain_tail.append(f"{key}={ct_choices[key.strip().lower()][0]}")
        else:
            plain_tail.append(part)
    rebuilt = lambda level: f"{kind_text}:{level}" + "".join(f",{p}" for p in plain_tail)  # noqa: E731
    low_spec = parse_noise_spec(rebuilt(bounds[0] if bounds else ""))
    high_spec = parse_noise_spec(rebuilt(bounds[-1] if bounds else ""))
    if low_spec.unit != high_spec.unit:
        raise ValueError(f"both ends of the range in {spec!r} need the same unit")
    low, high = low_spec.level, high_spec.level
    if high < low:
        raise ValueError(f"range {first!r} in {spec!r} runs backwards")
    kind = low_spec.kind
    log_uniform = low_spec.unit in (LevelUnit.HU, LevelUnit.COUNTS, LevelUnit.DOSE) and low > 0
    scanner = low_spec.scanner
    kernels, views, electronic = (scanner.kernel,), (scanner.views, scanner.views), (scanner.electronic_noise,) * 2
    grain = (scanner.grain, scanner.grain)
    if ct_choices:
        if kind != NoiseKind.CT_LOWDOSE:
            raise ValueError(f"choices with '|' are only for ct-lowdose options, in {spec!r}")
        if "kernel" in ct_choices:
            kernels = tuple(c.lower() for c in ct_choices["kernel"])
            for kernel in kernels:
                parse_noise_spec(f"ct-lowdose:1,kernel={kernel}")
        if "views" in ct_choices:
            values = [parse_noise_spec(f"ct-lowdose:1,views={v}").scanner.views for v in ct_choices["views"]]
            views = (min(values), max(values))
        if "electronic" in ct_choices:
            values = [
                parse_noise_spec(f"ct-lowdose:1,electronic={v}").scanner.electronic_noise
                for v in ct_choices["electronic"]
            ]
            electronic = (min(values), max(values))
        if "grain" in ct_choices:
            values = [parse_noise_spec(f"ct-lowdose:1,grain={v}").scanner.grain for v in ct_choices["grain"]]
            grain = (min(values), max(values))
    return NoiseRange(
        kind,
        low,
        high,
        low_spec.unit,
        low_spec.coils,
        low_spec.read_noise,
        log_uniform,
        kernels,
        views,
        electronic,
        grain,
    )
