"""MedDenoise library: medical image denoising on MONAI and PyTorch.

One data path serves every front end (CLI, MONAI bundle, 3D Slicer module)::

    io.read_volume -> transforms.IntensityScaling -> inference.Denoiser -> inverse scaling -> io.write_volume

Sub-packages: ``io`` (volumes, DICOM series), ``transforms`` (noise simulation, intensity scaling, noise
estimation), ``networks`` (DnCNN, DRAN, IRUNet, RDN, conv-DAE, KPN and their registry), ``weights`` (shipped
weights and model cards), ``inference`` (the ``Denoiser``), ``baselines`` (median, NLM, BM3D, anisotropic
diffusion), ``training``, ``evaluation`` and ``bundle`` (the MONAI bundle).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .errors import InputError, MedDenoiseError, OptionError, OutputError

try:
    # pyproject.toml's [project] version is the one place the version is written
    __version__ = version("meddenoiselib")
except PackageNotFoundError:  # imported from a source tree that was never installed (PYTHONPATH=MedDenoiseLib)
    __version__ = "0+source"

__all__ = ["InputError", "MedDenoiseError", "OptionError", "OutputError", "__version__"]
