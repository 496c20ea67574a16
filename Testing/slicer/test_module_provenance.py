"""The module names a resampled input (user need 21), as the command line does for a file: a node carries no header,
so the DICOM module's instance UIDs and the application's DICOM database, or the file the node was loaded from, tell.
Real MRML (slicer-core), real NIfTI and DICOM files, the real chest CT; ``slicer.dicomDatabase`` exists only in the
application, so a stand-in answers ``instanceValue`` as ctkDICOMDatabase does (the tag as ``"gggg,eeee"``)."""

from __future__ import annotations

import nibabel
import numpy as np
import pydicom
import pytest

import slicer
from meddenoiselib.io import read_volume
from MedDenoiseModuleLib import DenoiseSettings, DenoiseTask, TaskState, resampling_sign_of_node

from .conftest import add_volume_node

TIMEOUT = 180
MODES = [pytest.param(False, id="in-process"), pytest.param(True, id="child-process")]
SETTINGS = dict(model="median", noise_level=10.0)


class _DicomDatabase:
    """Answers ``instanceValue(uid, "gggg,eeee")`` from real DICOM files, as ctkDICOMDatabase does ("" if unknown)."""

    def __init__(self, files):
        self.datasets = {str(d.SOPInstanceUID): d for d in (pydicom.dcmread(f, stop_before_pixels=True) for f in files)}
        self.asked = []

    def instanceValue(self, uid: str, tag: str) -> str:  # noqa: N802 - the CTK method's name
        self.asked.append((uid, tag))
        dataset = self.datasets.get(uid)
        element = dataset.get(tuple(int(part, 16) for part in tag.split(","))) if dataset is not None else None
        if element is None:
            return ""
        value = element.value
        return "\\".join(value) if not isinstance(value, str) else value


@pytest.fixture()
def chest_node(scene, ct_series_dir):
    ct = read_volume(ct_series_dir)
    return add_volume_node(scene, ct.array, ct.ijk_to_ras(), name="chest"), ct


def _loaded_from_dicom(node, files, monkeypatch, image_type=None):
    """Mark ``node`` as the DICOM module leaves it and install a database of ``files`` (their ImageType replaced)."""
    database = _DicomDatabase(files)
    if image_type is not None:
        for dataset in database.datasets.values():
            dataset.ImageType = image_type
    node.SetAttribute("DICOM.instanceUIDs", " ".join(database.datasets))
    monkeypatch.setattr(slicer, "dicomDatabase", database, raising=False)
    return database


def test_a_reformatted_dicom_series_is_named_from_the_database(chest_node, ct_series_dir, monkeypatch):
    node, _ = chest_node
    files = sorted(ct_series_dir.iterdir())
    database = _loaded_from_dicom(node, files, monkeypatch)
    assert resampling_sign_of_node(node) == ""  # the sample's own ImageType: ORIGINAL\PRIMARY\AXIAL
    assert database.asked and database.asked[0][1] == "0008,0008"

    _loaded_from_dicom(node, files, monkeypatch, ["DERIVED", "SECONDARY", "MPR"])
    assert resampling_sign_of_node(node) == (
        "its DICOM ImageType is DERIVED\\SECONDARY\\MPR (MPR: a reformatted series)"
    )
    monkeypatch.setattr(slicer, "dicomDatabase", None, raising=False)  # no database (outside the application)
    assert resampling_sign_of_node(node) == ""


@pytest.mark.parametrize(("code", "expected"), [(1, ""), (2, ""), (4, "MNI 152 space")])
def test_a_nifti_registered_to_an_atlas_is_named_from_its_file(scene, tmp_path, code, expected):
    image = nibabel.Nifti1Image(np.zeros((8, 8, 4), np.int16), np.diag([1.0, 1.0, 2.0, 1.0]))
    image.set_sform(image.affine, code=code)
    path = tmp_path / "t1_in_mni.nii.gz"
    nibabel.save(image, path)
    node = add_volume_node(scene, np.zeros((4, 8, 8), np.int16), np.eye(4), name="t1")
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    node.SetAndObserveStorageNodeID(storage.GetID())
    sign = resampling_sign_of_node(node)
    assert (expected in sign) if expected else sign == ""

    path.write_bytes(b"not a NIfTI")  # an unreadable header gives no advice (reading the image names the problem)
    assert resampling_sign_of_node(node) == ""


@pytest.mark.parametrize("separate", MODES)
def test_the_task_warns_in_the_log_and_reports_it(chest_node, ct_series_dir, temp_root, monkeypatch, separate):
    node, ct = chest_node
    _loaded_from_dicom(node, sorted(ct_series_dir.iterdir()), monkeypatch, ["DERIVED", "SECONDARY", "REFORMATTED"])
    task = DenoiseTask(node, DenoiseSettings(**SETTINGS, separate_process=separate), temp_root=temp_root)
    assert task.start().wait(timeout=TIMEOUT) is TaskState.DONE, task.error
    warnings = [line for line in task.log if "looks resampled" in line]
    assert len(warnings) == 1, task.log  # once, in both modes
    assert warnings[0].startswith("Warning: 'chest' looks resampled: its DICOM ImageType is DERIVED\\SECONDARY")
    table = task.report_table
    report = {table.GetCellText(row, 0): table.GetCellText(row, 1) for row in range(table.GetNumberOfRows())}
    assert report["input resampled"].endswith("(REFORMATTED: a reformatted series)")
    # the warning is advice: the volume is denoised as usual
    output = slicer.util.arrayFromVolume(task.output_node)
    assert output.shape == ct.shape and not np.array_equal(output, ct.array)


def test_an_original_series_gives_no_warning(chest_node, ct_series_dir, temp_root, monkeypatch):
    node, _ = chest_node
    _loaded_from_dicom(node, sorted(ct_series_dir.iterdir()), monkeypatch)
    task = DenoiseTask(node, DenoiseSettings(**SETTINGS, separate_process=False), temp_root=temp_root)
    assert task.start().wait(timeout=TIMEOUT) is TaskState.DONE, task.error
    assert not [line for line in task.log if "resampled" in line]
    table = task.report_table
    assert "input resampled" not in [table.GetCellText(row, 0) for row in range(table.GetNumberOfRows())]
