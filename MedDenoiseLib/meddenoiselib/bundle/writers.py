"""The bundle's NIfTI writer: MONAI's ``NibabelWriter`` that also keeps a time series' interval between volumes.

MONAI's writer builds a new NIfTI header, so a 4D fMRI, perfusion or DCE run came out with ``pixdim[4]`` 1 and no
time unit: FSL, AFNI and fMRIPrep then read a repetition time of 1 s. The reader
(:class:`~meddenoiselib.bundle.readers.VolumeReader`) puts the interval in the metadata (:data:`FRAME_INTERVAL_KEY`,
seconds: a NIfTI input's ``pixdim[4]`` in its unit, a DICOM run's RepetitionTime) and :class:`SeriesNiftiWriter`
writes it as ``pixdim[4]`` in seconds, as dcm2niix and the command line do. Like the command line, it warns when
ITK-based tools would misplace a sheared (tilted-gantry) grid, whose shear only the sform holds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
from monai.data import NibabelWriter
from monai.utils import get_equivalent_dtype

from ..io.nifti import sheared_grid_warning

__all__ = ["FRAME_INTERVAL_KEY", "SeriesNiftiWriter", "writer_for"]

logger = logging.getLogger(__name__)

#: metadata key of a time series' interval between volumes, in seconds (absent for volumes and other frames)
FRAME_INTERVAL_KEY = "frame_interval_s"


class SeriesNiftiWriter(NibabelWriter):
    """``NibabelWriter`` writing :data:`FRAME_INTERVAL_KEY` of the metadata, where present, as ``pixdim[4]`` (s)."""

    frame_interval: float | None = None

    def set_metadata(self, meta_dict: Mapping | None, resample: bool = True, **options) -> None:
        super().set_metadata(meta_dict, resample=resample, **options)
        interval = (meta_dict or {}).get(FRAME_INTERVAL_KEY)
        self.frame_interval = float(interval) if interval is not None and float(interval) > 0 else None

    def write(self, filename, verbose: bool = False, **obj_kwargs) -> None:
        shape = tuple(getattr(self.data_obj, "shape", ()))
        if self.frame_interval is not None and len(shape) == 4 and "header" not in obj_kwargs:
            import nibabel as nib

            header = nib.Nifti1Header()
            # the header's dtype is the file's: the output's, not nibabel's float32 default
            header.set_data_dtype(get_equivalent_dtype(self.output_dtype or np.float32, np.ndarray))
            header.set_data_shape(shape)
            header.set_zooms((1.0, 1.0, 1.0, self.frame_interval))  # spatial zooms come from the affine
            header.set_xyzt_units("mm", "sec")
            obj_kwargs["header"] = header
        super().write(filename, verbose=verbose, **obj_kwargs)
        # the image nibabel just saved
        warning = sheared_grid_warning(self.data_obj, str(filename), "output_ext .nrrd keeps it for them")
        if warning:
            logger.warning("%s", warning)


def writer_for(output_ext: str) -> type[NibabelWriter] | None:
    """The writer ``SaveImaged`` uses for ``output_ext``: :class:`SeriesNiftiWriter` for NIfTI, else None (MONAI's
    choice by extension)."""
    return SeriesNiftiWriter if str(output_ext).lower() in (".nii", ".nii.gz") else None
