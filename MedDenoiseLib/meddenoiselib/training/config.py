"""The training configuration: every option, its default, and where it comes from."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TrainConfig"]


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as ``config.json`` beside its checkpoints.

    Attributes:
        inputs: training files, DICOM series folders, or folders searched recursively.
        output: run folder (checkpoint, log, weights, model card).
        network: registry preset name (``python -m meddenoiselib models``).
        overrides: constructor overrides for the preset.
        spatial_dims: 2 (slices of volumes, 2D images) or 3 (3D patches of volumes).
        mode: ``"supervised"`` (clean images + simulated noise) or ``"self-supervised"`` (noisy images only,
            blind-spot masking).
        val_inputs: validation files; when empty, ``val_fraction`` of the input files is held out (by file).
        val_fraction: share of input files held out when ``val_inputs`` is empty.
        noise: noise models with their level ranges, drawn per sample, each in its own units (see
            :func:`~meddenoiselib.transforms.noise.parse_noise_range`): ``gaussian:0-50``, ``rician:0-50``,
            ``speckle:0.05-0.5``, ``poisson:10-1000``, ``ct-lowdose:5HU-100HU,kernel=shepp-logan|hann``. A bare
            model name takes its range from ``noise_range``.
        noise_range: level range for bare model names in ``noise`` (legacy form; Gaussian/Rician σ on the 0-255
            scale).
        store_8bit_fraction: share of noisy training samples clipped to [0, 1] and rounded to 8 bits, as noisy
            PNG/JPEG files are (see :class:`~meddenoiselib.transforms.noise.BatchNoise`).
        noisy_range_fraction: share of noisy samples re-expressed on the min-max scale of the noisy file (its
            extremes a few sigma beyond the clean range), as the CLI scales a user's file (see
            :func:`~meddenoiselib.training.file_range.to_noisy_file_range`).
        scaling: how training images are normalized, which is also what inference applies (written to the model
            card): ``minmax`` per image, or ``ct_window`` — the fixed HU map of ``window``, so a noise level in HU
            means the same in every scan.
        window: ``(center, width)`` in HU of the ``ct_window`` map. Defaults to W400/L40.
        simulate_noise: self-supervised mode only: corrupt the inputs ONCE at load time with this Gaussian σ
            (0-255 scale) to emulate a noisy-only dataset (0 = inputs are already noisy scans).
        mask_fraction: self-supervised: share of pixels hidden per patch.
        patch: patch edge in pixels.
        slice_strides: 2D burst models: slice steps between the frames of a training stack, one drawn per stack
            (``[1, 2, 3]`` also shows a 2 mm series as 4 and 6 mm ones). Defaults to ``[1]``.
        batch_size: patches per optimisation step (global, across all distributed ranks).
        steps: optimisation steps.
        time_budget: seconds this invocation may train, counted from its first step (0: no limit). After 50 steps
            the step count is lowered to what fits, and fitted again every :data:`~meddenoiselib.training.trainer.
            REFIT_EVERY` steps from the latest steps' pace (the first ones include warm-up), never above ``steps``;
            so the learning-rate schedule still ends where the run ends (a lent GPU for a fixed time).
        deadline: wall-clock time (``time.time()``, seconds since the epoch) by which training must end (0: none).
            Fitted like ``time_budget``, whichever ends first; for runs whose data loading takes an unknown share
            of a fixed lease.
        stop_after: pause after this many steps of this invocation, keeping the checkpoint for ``--resume``
            (budgeted runs); 0 runs to the end.
        lr: Adam learning rate.
        schedule: ``"cosine"`` (to 1 % of ``lr``), ``"step"`` (halve at 50 % and 75 %) or ``"constant"``.
        warmup_steps: linear learning-rate warm-up.
        loss: ``"l1"`` or ``"mse"``.
        grad_clip: max gradient norm (0 disables).
        weight_decay: Adam weight decay.
        init: start from shipped weights (name) or a ``.safetensors`` file (fine-tuning).
        grow: fine-tuning: build this registry network instead of the ``init`` model's own and copy the init's
            weights into it. Every parameter the init lacks must start with no effect (the zero-initialised coarse
            kernels of ``kpn-ms-burst3`` grown from a ``kpn-burst3``-type model), so training starts from the init's
            exact output. Empty: train the init's network.
        freeze: fine-tuning: number of leading parameterised layers to freeze.
        seed: seeds patch sampling, noise and initialisation.
        checkpoint_every: steps between checkpoints.
        val_every: steps between validations (one "epoch" of the log).
        early_stop: stop after this many validations without improvement (0 disables).
        precision: ``"auto"`` (bf16 autocast on capable CPUs, fp16 AMP on CUDA), ``"fp32"``, ``"bf16"``.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        threads: torch CPU threads (0 = torch's default).
        val_images: validation slices used (largest first, capped).
        val_sigmas: validation noise levels, in the units of the first ``noise`` model's range (Gaussian/Rician σ
            on the 0-255 scale, Poisson peak, speckle relative σ, CT body noise in HU).
        cache_dir: where per-image training maps (CT noise maps) are kept between runs; empty: ``<output>/cache``.
        name: name written into the model card. Defaults to the network name.
        description: free text written into the model card.
    """

    inputs: list[str] = field(default_factory=list)
    output: str = "runs/train"
    network: str = "dncnn-small"
    overrides: dict[str, Any] = field(default_factory=dict)
    spatial_dims: int = 2
    mode: str = "supervised"
    val_inputs: list[str] = field(default_factory=list)
    val_fraction: float = 0.1
    noise: list[str] = field(default_factory=lambda: ["gaussian"])
    noise_range: tuple[float, float] = (0.0, 50.0)
    store_8bit_fraction: float = 0.0
    noisy_range_fraction: float = 0.0
    scaling: str = "minmax"
    window: tuple[float, float] = (40.0, 400.0)
    simulate_noise: float = 0.0
    mask_fraction: float = 0.02
    patch: int = 64
    slice_strides: list[int] = field(default_factory=lambda: [1])
    batch_size: int = 16
    steps: int = 2000
    stop_after: int = 0
    time_budget: float = 0.0
    deadline: float = 0.0
    lr: float = 1e-3
    schedule: str = "cosine"
    warmup_steps: int = 100
    loss: str = "l1"
    grad_clip: float = 1.0
    weight_decay: float = 0.0
    init: str = ""
    grow: str = ""
    freeze: int = 0
    seed: int = 0
    checkpoint_every: int = 200
    val_every: int = 200
    early_stop: int = 0
    precision: str = "auto"
    device: str = "auto"
    threads: int = 0
    val_images: int = 12
    val_sigmas: list[float] = field(default_factory=lambda: [15.0, 25.0, 50.0])
    cache_dir: str = ""
    name: str = ""
    description: str = ""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad option."""
        if self.mode not in ("supervised", "self-supervised"):
            raise ValueError(f"`mode` must be 'supervised' or 'self-supervised', got {self.mode!r}.")
        if self.spatial_dims not in (2, 3):
            raise ValueError(f"`spatial_dims` must be 2 or 3, got {self.spatial_dims}.")
        if self.loss not in ("l1", "mse"):
            raise ValueError(f"`loss` must be 'l1' or 'mse', got {self.loss!r}.")
        if self.schedule not in ("cosine", "step", "constant"):
            raise ValueError(f"`schedule` must be cosine, step or constant, got {self.schedule!r}.")
        for name in ("patch", "batch_size", "steps", "checkpoint_every", "val_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be at least 1, got {getattr(self, name)}.")
        if self.grow and not self.init:
            raise ValueError(f"`grow` ({self.grow!r}) needs `init`: the trained model to grow from.")
        strides = self.slice_strides
        try:
            # "1,2,3", as the recipes write it, or a list
            self.slice_strides = [int(v) for v in (strides.split(",") if isinstance(strides, str) else strides)]
        except (TypeError, ValueError):
            raise ValueError(f"`slice_strides` must be positive integers, got {strides!r}.") from None
        if not self.slice_strides or min(self.slice_strides) < 1:
            raise ValueError(f"`slice_strides` must be positive integers, got {strides!r}.")
        if self.lr <= 0:
            raise ValueError(f"`lr` must be positive, got {self.lr}.")
        for name in ("time_budget", "deadline"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must not be negative, got {getattr(self, name)}.")
        if not 0.0 <= self.noisy_range_fraction <= 1.0:
            raise ValueError(f"`noisy_range_fraction` must be between 0 and 1, got {self.noisy_range_fraction}.")
        if not self.inputs:
            raise ValueError("`inputs` must name at least one file or folder.")
        if self.scaling not in ("minmax", "ct_window"):
            raise ValueError(f"`scaling` must be 'minmax' or 'ct_window', got {self.scaling!r}.")
        if isinstance(self.window, str):  # "CENTER,WIDTH", as the CLI and the recipes write it
            try:
                self.window = tuple(float(v) for v in self.window.split(","))
            except ValueError:
                raise ValueError(f"`window` must be 'CENTER,WIDTH' in HU, got {self.window!r}.") from None
        if len(self.window) != 2 or not self.window[1] > 0:
            raise ValueError(f"`window` must be (center, width) with a positive width, got {self.window!r}.")
        self.noise_ranges()  # raises ValueError naming a bad range

    def noise_ranges(self) -> list:
        """The :class:`~meddenoiselib.transforms.noise.NoiseRange` of every ``noise`` entry."""
        from ..transforms.noise import parse_noise_range

        ranges = []
        for entry in self.noise:
            text = entry if ":" in entry else f"{entry}:{self.noise_range[0]:g}-{self.noise_range[1]:g}"
            ranges.append(parse_noise_range(text))
        return ranges

    def to_json(self) -> str:
        """The resolved configuration as JSON."""
        return json.dumps(asdict(self), indent=2)

    @staticmethod
    def from_json(path: str | Path) -> TrainConfig:
        """Read a configuration written by :meth:`to_json`."""
        values = json.loads(Path(path).read_text())
        values["noise_range"] = tuple(values.get("noise_range", (0.0, 50.0)))
        values["window"] = tuple(values.get("window", (40.0, 400.0)))
        return TrainConfig(**values)
