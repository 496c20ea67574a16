"""The bundle's NIfTI writer: MONAI's ``NibabelWriter`` that also keeps a time series' interval between volumes.

MONAI's writer builds a new NIfTI header, so a 4D fMRI, perfusion or DCE run came out with ``pixdim[4]`` 1 and no
time unit: FSL, AFNI and fMRIPrep then read a repetition time of 1 s. The reader
(:class:`~meddenoiselib.bundle.readers.VolumeReader`) puts the interval in the metadata (:data:`FRAME_INTERVAL_KEY`,
seconds: a NIfTI input's ``pixdim[4]`` in its unit, a DICOM run's RepetitionTime) and :class:`SeriesNiftiWriter`
writes it as ``pixdim[4]`` in seconds, as dcm2niix and the command line do. Like the command line, it warns when
ITK-based tools would misplace a sheared (tilted-gantry) grid, whose shear only the sform holds, or with the config's
``correct_tilt`` resamples such a grid onto the orthogonal grid of its image planes (:func:`~meddenoiselib.io.tilt.
correct_tilt`, as the command line's ``--correct-tilt``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
from monai.data import NibabelWriter
from monai.utils import get_equivalent_dtype

from ..io.nifti import sheared_grid_warning

__all__ = ["FRAME_INTERVAL_KEY", "SeriesNiftiWriter", "TiltCorrectingNiftiWriter", "writer_for"]

logger = logging.getLogger(__name__)

#: metadata key of a time series' interval between volumes, in seconds (absent for volumes and other frames)
FRAME_INTERVAL_KEY = "frame_interval_s"


class SeriesNiftiWriter(NibabelWriter):
    """``NibabelWriter`` writing :data:`FRAME_INTERVAL_KEY` of the metadata, where present, as ``pixdim[4]`` (s)."""

    frame_interval: float | None = None
    #: resample a sheared (tilted-gantry) grid onto its planes' orthogonal grid before writing
    correct_tilt: bool = False

    def set_metadata(self, meta_dict: Mapping | None, resample: bool = True, **options) -> None:
        super().set_metadata(meta_dict, resample=resample, **options)
        interval = (meta_dict or {}).get(FRAME_INTERVAL_KEY)
        self.frame_interval = float(interval) if interval is not None and float(interval) > 0 else None

    def write(self, filename, verbose: bool = False, **obj_kwargs) -> None:
        if self.correct_tilt:
            self._correct_tilt(str(filename))
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
        warning = sheared_grid_warning(
            self.data_obj, str(filename), "output_ext .nrrd keeps it for them, or correct_tilt resamples it"
        )
        if warning:
            logger.warning("%s", warning)

    def _correct_tilt(self, label: str) -> None:
        """The data ``(I, J, K[, T])`` and RAS affine moved onto the orthogonal grid of a sheared grid's planes."""
        from ..io import Volume, VolumeSeries
        from ..io.tilt import correct_tilt

        array = np.asarray(self.data_obj)
        if array.ndim not in (3, 4) or self.affine is None:
            return
        ras = np.asarray(self.affine, dtype=np.float64)
        grid = Volume.from_ijk_to_ras(np.zeros((1, 1, 1)), ras)
        if array.ndim == 3:
            image = Volume(np.ascontiguousarray(array.transpose(2, 1, 0)), grid.spacing, grid.origin, grid.direction)
        else:
            frames = np.ascontiguousarray(array.transpose(3, 2, 1, 0))
            image = VolumeSeries(frames, grid.spacing, grid.origin, grid.direction)
        corrected = correct_tilt(image)
        if corrected is image:
            return
        moved = corrected.array.transpose(2, 1, 0) if array.ndim == 3 else corrected.array.transpose(3, 2, 1, 0)
        written = get_equivalent_dtype(self.output_dtype, np.ndarray) if self.output_dtype is not None else None
        if written is not None and np.issubdtype(written, np.integer) and moved.dtype.kind == "f":
            moved = np.rint(moved)  # MONAI casts to the file's integer type by truncation
        self.data_obj = np.ascontiguousarray(moved)
        self.affine = corrected.ijk_to_ras() if array.ndim == 3 else corrected.frame(0).ijk_to_ras()
        logger.info("%s: corrected a gantry tilt (resampled onto an orthogonal grid of %s voxels)", label, moved.shape)


class TiltCorrectingNiftiWriter(SeriesNiftiWriter):
    """:class:`SeriesNiftiWriter` that resamples a sheared (tilted-gantry) grid onto an orthogonal one."""

    correct_tilt = True


def writer_for(output_ext: str, correct_tilt: bool | str = False) -> type[NibabelWriter] | None:
    """The writer ``SaveImaged`` uses for ``output_ext``: :class:`SeriesNiftiWriter` for NIfTI (with
    ``correct_tilt``, :class:`TiltCorrectingNiftiWriter`), else None (MONAI's choice by extension).
    ``correct_tilt`` may be the string the bundle's command line gives (``--correct_tilt true`` / ``false``).

    Raises:
        ValueError: ``correct_tilt`` for another format (NRRD and MetaImage hold a sheared grid; DICOM is not
            written by the bundle).
    """
    from . import flag

    correct_tilt = flag(correct_tilt)
    if str(output_ext).lower() in (".nii", ".nii.gz"):
        return TiltCorrectingNiftiWriter if correct_tilt else SeriesNiftiWriter
    if correct_tilt:
        raise ValueError(f"correct_tilt resamples NIfTI outputs; output_ext {output_ext} keeps a sheared grid as it is")
    return None
