"""A classic CT DICOM series taken on a tilted gantry, for the tests of uneven and sheared slice stacks."""

from __future__ import annotations

import math

import numpy as np
import pydicom

from ..conftest import new_dicom_dataset

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ROW = np.array([1.0, 0.0, 0.0])
PIXEL_MM = 0.7


def tilted_column(tilt_degrees: float) -> np.ndarray:
    """The image column direction (LPS) of a gantry tilted ``tilt_degrees``: the planes turn about the row axis."""
    tilt = math.radians(tilt_degrees)
    return np.array([0.0, math.cos(tilt), -math.sin(tilt)])


def write_tilted_ct(folder, hu: np.ndarray, heights, tilt_degrees: float, series_uid: str, thickness=None) -> None:
    """A series of ``hu`` ``(Z, Y, X)``: 0.7 mm pixels, slice k at ``heights[k]`` mm along the table (the patient's S
    axis) from (-45, -40, 100) mm, the gantry tilted ``tilt_degrees``, int16 stored with intercept -1024;
    ``thickness``: SliceThickness per slice (default each slice's step to the next)."""
    folder.mkdir(parents=True)
    steps = np.diff(heights, append=heights[-1] + (heights[-1] - heights[-2] if len(heights) > 1 else 1.0))
    for k, height in enumerate(heights):
        ds = new_dicom_dataset(CT_IMAGE_STORAGE, study="1.2.3.4", series=series_uid)
        ds.Modality, ds.PatientID, ds.InstanceNumber = "CT", "head", k + 1
        ds.ImageOrientationPatient = [*ROW.tolist(), *tilted_column(tilt_degrees).tolist()]
        ds.ImagePositionPatient = [-45.0, -40.0, 100.0 + float(height)]
        ds.PixelSpacing, ds.GantryDetectorTilt = [PIXEL_MM, PIXEL_MM], tilt_degrees
        ds.SliceThickness = float(thickness[k] if thickness is not None else steps[k])
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.Rows, ds.Columns = hu.shape[1:]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = np.ascontiguousarray(np.rint(hu[k] + 1024), dtype=np.int16).tobytes()
        pydicom.dcmwrite(str(folder / f"{k:02d}.dcm"), ds, enforce_file_format=True)
