"""ITK/GDCM messages never reach the terminal: they go to the library log at DEBUG level (issue 15, item 6).

The messages are written by C++ straight to file descriptor 2, so the tests capture the descriptor (``capfd``), not
``sys.stderr``. A control test shows that the same probe outside the library does write to fd 2, so an empty capture
means the library routed the message, not that nothing was said.
"""

from __future__ import annotations

import logging

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from meddenoiselib.cli import main
from meddenoiselib.io import find_inputs, is_dicom_folder, read_volume
from meddenoiselib.io.itk_messages import itk_messages_logged

GDCM_NO_SERIES = "No Series were found"


@pytest.fixture()
def nifti_folder(tmp_path):
    """A folder of three small int16 NIfTI files (no DICOM anywhere)."""
    folder = tmp_path / "scans"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(3):
        data = rng.integers(0, 1000, size=(16, 12, 3), dtype=np.int16)
        nib.save(nib.Nifti1Image(data, np.diag([0.8, 0.8, 3.0, 1.0])), str(folder / f"scan{index}.nii.gz"))
    return folder


def test_control_gdcm_writes_to_fd2_without_the_library(nifti_folder, capfd):
    assert sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(nifti_folder)) == ()
    assert GDCM_NO_SERIES in capfd.readouterr().err


def test_probing_a_nifti_folder_logs_gdcm_at_debug_and_writes_nothing(nifti_folder, capfd, caplog):
    caplog.set_level(logging.DEBUG, logger="meddenoiselib.io.itk_messages")
    assert not is_dicom_folder(nifti_folder)
    assert [p.name for p in find_inputs(nifti_folder)] == ["scan0.nii.gz", "scan1.nii.gz", "scan2.nii.gz"]
    assert read_volume(nifti_folder / "scan1.nii.gz").array.shape == (3, 12, 16)
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""
    debug = [r for r in caplog.records if r.name == "meddenoiselib.io.itk_messages"]
    assert debug and all(r.levelno == logging.DEBUG for r in debug)
    assert any(GDCM_NO_SERIES in r.getMessage() for r in debug)  # the message was routed, not lost


def test_cli_denoise_of_a_nifti_folder_is_quiet(nifti_folder, tmp_path, capfd):
    assert main(["denoise", str(nifti_folder), str(tmp_path / "out"), "--model", "median", "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"scan{i}.nii.gz" for i in range(3)]
    assert capfd.readouterr().err == ""


def test_the_previous_itk_output_window_is_restored(nifti_folder, capfd):
    with itk_messages_logged(), itk_messages_logged():  # nested use is allowed
        sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(nifti_folder))
    assert capfd.readouterr().err == ""
    sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(nifti_folder))
    assert GDCM_NO_SERIES in capfd.readouterr().err
