"""MedDenoise library: medical image denoising on MONAI and PyTorch.

One data path serves every front end (CLI, MONAI bundle, 3D Slicer module)::

    io.read_volume -> transforms.IntensityScaling -> inference.Denoiser -> inverse scaling -> io.write_volume

Sub-packages: ``io`` (volumes, DICOM series), ``transforms`` (noise simulation, intensity scaling, noise
estimation), ``networks`` (DnCNN, DRAN, IRUNet, RDN, conv-DAE, KPN and their registry), ``weights`` (shipped
weights and model cards), ``inference`` (the ``Denoiser``), ``baselines`` (median, NLM, BM3D, anisotropic
diffusion), ``training``, ``evaluation`` and ``bundle`` (the MONAI bundle).
"""

from __future__ import annotations

from .errors import InputError, MedDenoiseError, OptionError, OutputError

__version__ = "0.1.0"

__all__ = ["InputError", "MedDenoiseError", "OptionError", "OutputError", "__version__"]
