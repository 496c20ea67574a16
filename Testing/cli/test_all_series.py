"""``denoise --all-series``: a folder holding several DICOM series (a PACS export of a study, a CD's study folder)
denoised series by series, each into its own output named by its series number and description. Without the flag
the largest series is read (with a warning) or, when two are equally large, the run is refused with the choice.

Real data: the bundled 4-slice chest CT series and a second series made from 3 of its slices (new UIDs, another
number and description, the image mirrored so that the two series differ voxel for voxel).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from meddenoiselib.cli import main
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import read_volume

LUNG_UID = "1.2.826.0.1.3680043.2.1125.77.5"


def _lung_series(source: Path, target: Path, slices: int = 3, description: str = "LUNG 1.25/0.8") -> None:
    """``slices`` slices of the series in ``source`` as another series (number 5, ``description``) in ``target``."""
    for index, path in enumerate(sorted(source.iterdir())[:slices]):
        dataset = pydicom.dcmread(path)
        dataset.SeriesInstanceUID = LUNG_UID
        dataset.SeriesNumber = 5
        dataset.SeriesDescription = description
        dataset.SOPInstanceUID = f"{LUNG_UID}.{index + 1}"
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        dataset.PixelData = np.ascontiguousarray(dataset.pixel_array[:, ::-1]).tobytes()
        dataset.save_as(target / f"lung{index:02d}.dcm")


@pytest.fixture()
def study(ct_series_copy, ct_series_dir) -> Path:
    """One flat folder holding the chest series (4 slices, number 10230, no description) and the lung series."""
    _lung_series(ct_series_dir, ct_series_copy)
    return ct_series_copy


def _denoised_alone(folder: Path, uid: str | None) -> np.ndarray:
    volume = read_volume(folder, series_uid=uid)
    return Denoiser("median", device="cpu").denoise(volume).array


def test_every_series_of_a_folder_is_denoised_into_its_own_output(study, tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        main(
            [
                "denoise",
                str(study),
                str(out),
                "--all-series",
                "--model",
                "median",
                "--report",
                str(tmp_path / "{name}.json"),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["10230", "5_LUNG_1_25_0_8"]
    chest, lung = read_volume(out / "10230"), read_volume(out / "5_LUNG_1_25_0_8")
    assert chest.shape == (4, 512, 512) and lung.shape == (3, 512, 512)
    # each is its series denoised alone (the chest series is the largest, read by default)
    np.testing.assert_array_equal(chest.array, _denoised_alone(study, None))
    np.testing.assert_array_equal(lung.array, _denoised_alone(study, LUNG_UID))
    assert lung.metadata["0008|103e"].startswith("LUNG 1.25/0.8")  # the source's description carried on
    derived = {pydicom.dcmread(path).SeriesInstanceUID for path in (out / "5_LUNG_1_25_0_8").iterdir()}
    assert len(derived) == 1 and LUNG_UID not in derived
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["10230.json", "5_LUNG_1_25_0_8.json"]
    assert "denoised 2 of 2 inputs (every DICOM series one)" in capsys.readouterr().err
    assert len(list(study.iterdir())) == 7  # the input folder untouched


def test_as_nifti_and_inside_a_folder_of_inputs_the_series_are_named_after_their_folder(study, tmp_path):
    batch = tmp_path / "patients"
    batch.mkdir()
    shutil.move(study, batch / "patient7")
    out = tmp_path / "out"
    args = ["denoise", str(batch), str(out), "--all-series", "--model", "median", "--format", "nifti", "-q"]
    assert main(args) == 0
    assert sorted(p.name for p in out.glob("*.nii.gz")) == ["patient7_10230.nii.gz", "patient7_5_LUNG_1_25_0_8.nii.gz"]
    assert len(list(out.glob("*.json"))) == 2  # each with its DICOM sidecar
    np.testing.assert_array_equal(
        read_volume(out / "patient7_5_LUNG_1_25_0_8.nii.gz").array, _denoised_alone(batch / "patient7", LUNG_UID)
    )


def test_without_the_flag_the_largest_series_is_read_and_a_tie_names_the_flag(study, tmp_path, ct_series_dir, capsys):
    assert main(["denoise", str(study), str(tmp_path / "chest"), "--model", "median", "-q"]) == 0
    assert read_volume(tmp_path / "chest").shape == (4, 512, 512)
    for path in study.glob("lung*"):
        path.unlink()
    _lung_series(ct_series_dir, study, slices=4)  # now as large as the chest series
    assert main(["denoise", str(study), str(tmp_path / "which"), "--model", "median"]) == 1
    err = capsys.readouterr().err
    assert "the largest is ambiguous" in err and "choose one with --series-uid, or denoise every series" in err
    assert "--all-series" in err and not (tmp_path / "which").exists()


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--series-uid", LUNG_UID], "--all-series denoises every series of a folder, --series-uid one of them"),
        (["--mask", "MASK"], "--mask lie on one series' voxel grid"),
    ],
)
def test_options_of_one_series_are_refused(study, tmp_path, capsys, extra, fragment):
    extra = [str(study / "00-slice098.dcm") if word == "MASK" else word for word in extra]
    assert main(["denoise", str(study), str(tmp_path / "out"), "--all-series", "--model", "median", *extra]) == 2
    assert fragment in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_a_file_or_a_file_name_as_output_is_refused(study, tmp_path, capsys):
    one = study / "00-slice098.dcm"
    assert main(["denoise", str(one), str(tmp_path / "x.dcm"), "--all-series", "--model", "median"]) == 2
    assert "--all-series denoises every DICOM series of a folder; this is a file" in capsys.readouterr().err
    assert main(["denoise", str(study), str(tmp_path / "x.nii.gz"), "--all-series", "--model", "median"]) == 1
    assert "the input is a folder of DICOM series, each written" in capsys.readouterr().err


def test_info_lists_the_series_and_the_outputs_all_series_writes(study, ct_series_dir, capsys):
    assert main(["info", str(study)]) == 0
    out = capsys.readouterr().out
    assert "shape_zyx         [4, 512, 512]" in out  # the largest series described
    assert "(3 files, CT 'LUNG 1.25/0.8') -> OUTPUT/5_LUNG_1_25_0_8 with denoise --all-series" in out
    assert "(4 files, CT) -> OUTPUT/10230 with denoise --all-series" in out
    for path in study.glob("lung*"):
        path.unlink()
    _lung_series(ct_series_dir, study, slices=4)
    assert main(["info", str(study)]) == 0  # equally large: listed, not refused
    out = capsys.readouterr().out
    assert "2 DICOM series, the largest two equally large: --series-uid UID describes one" in out
    assert out.count("with denoise --all-series") == 2 and "shape_zyx" not in out


def test_recursive_finds_series_in_patient_and_study_folders(tmp_path, ct_series_dir, capsys):
    """An export without a DICOMDIR (patient / study / series folders): found with --recursive, each output named by
    its path; the output folder inside the input is not read as input when the run is repeated."""
    export = tmp_path / "export"
    shutil.copytree(ct_series_dir, export / "patient1" / "20260301" / "chest")
    lung = export / "patient2" / "20260302" / "lung"
    lung.mkdir(parents=True)
    _lung_series(ct_series_dir, lung)
    out = export / "denoised"
    assert main(["denoise", str(export), str(out), "--model", "median", "-q"]) == 1
    assert "(--recursive searches its sub-folders too)" in capsys.readouterr().err
    args = ["denoise", str(export), str(out), "--model", "median", "--recursive", "-q"]
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["patient1_20260301_chest", "patient2_20260302_lung"]
    np.testing.assert_array_equal(read_volume(out / "patient2_20260302_lung").array, _denoised_alone(lung, None))
    assert main([*args, "--overwrite"]) == 0  # the earlier outputs, inside the input folder, are not inputs now
    assert sorted(p.name for p in out.iterdir()) == ["patient1_20260301_chest", "patient2_20260302_lung"]
    assert main(["info", str(export / "patient1"), "--recursive"]) == 0
    assert "20260301/chest  dicom-series  4x512x512" in capsys.readouterr().out


def test_a_run_scans_the_folder_once_and_lists_it_again_when_it_changes(study, tmp_path, monkeypatch):
    """GDCM reads every file's header per scan and scans once more per series for its file names; a run that lists
    the study, then probes and reads each series, scanned it ~2N + 1 times (8 series of 64 CT slices: 154 scans, 35
    of 61 s). Within a command the listing is kept: 2 + 1 scans here (the series IDs, each series' files; the input
    search's check for a series folder), and the outputs equal those of a run that scanned every time."""
    import SimpleITK as sitk

    from meddenoiselib.io import list_dicom_series
    from meddenoiselib.io.dicom import dicom_listings_kept

    scans = []
    ids, names = sitk.ImageSeriesReader.GetGDCMSeriesIDs, sitk.ImageSeriesReader.GetGDCMSeriesFileNames
    monkeypatch.setattr(sitk.ImageSeriesReader, "GetGDCMSeriesIDs", lambda *a: scans.append("ids") or ids(*a))
    monkeypatch.setattr(sitk.ImageSeriesReader, "GetGDCMSeriesFileNames", lambda *a: scans.append("names") or names(*a))
    out = tmp_path / "out"
    assert main(["denoise", str(study), str(out), "--all-series", "--model", "median", "-q"]) == 0
    assert scans.count("names") == 2 and scans.count("ids") <= 2
    for name, uid in (("10230", None), ("5_LUNG_1.25_0.8", LUNG_UID)):
        expected = _denoised_alone(study, uid)
        np.testing.assert_array_equal(read_volume(next(out.glob(f"{name.split('_')[0]}*"))).array, expected)
    with dicom_listings_kept():
        assert len(list_dicom_series(study)) == 2
        scans.clear()
        assert len(list_dicom_series(study)) == 2 and not scans  # kept
        shutil.copy(next(study.glob("lung00.dcm")), study / "lung_copy.dcm")  # the folder changed: listed again
        list_dicom_series(study)
        assert scans.count("ids") == 1
    scans.clear()
    list_dicom_series(study)  # outside a run nothing is kept
    list_dicom_series(study)
    assert scans.count("ids") == 2
