"""The command line, run as a real subprocess (each subcommand at least once) and in-process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from meddenoiselib.cli import main
from meddenoiselib.evaluation import local_noise_sd, psnr
from meddenoiselib.io import read_volume
from meddenoiselib.transforms import fit_scaling

from ..conftest import digest_tree

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "meddenoiselib", *args], capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def test_help_and_version():
    import importlib.metadata

    import tomllib

    assert "denoise" in run_cli("--help").stdout
    written = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert importlib.metadata.version("meddenoiselib") == written
    assert run_cli("--version").stdout.strip() == f"meddenoiselib {written}"


def test_denoise_dicom_series_to_derived_series_and_nifti(tmp_path, ct_series_dir, capsys):
    before = digest_tree(ct_series_dir)
    out = tmp_path / "derived"
    result = run_cli(
        "denoise", str(ct_series_dir), str(out), "--model", "median", "--sigma", "25", "--progress-format", "lines"
    )
    lines = [line for line in result.stderr.splitlines() if line.startswith("PROGRESS ")]
    fractions = [float(line.split()[1]) for line in lines]
    assert fractions and fractions == sorted(fractions) and fractions[-1] == 1.0
    source, derived = read_volume(ct_series_dir), read_volume(out)
    assert derived.same_geometry(source) and derived.array.dtype == source.array.dtype
    first = pydicom.dcmread(sorted(out.iterdir())[0])
    assert first.SeriesDescription.endswith("denoised") and "median" in first.DerivationDescription
    assert digest_tree(ct_series_dir) == before  # input untouched
    # existing output is refused without --overwrite, with exit code 1 and one line
    assert main(["denoise", str(ct_series_dir), str(out), "--model", "median"]) == 1
    again = capsys.readouterr().err
    assert again.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in again
    assert main(["denoise", str(ct_series_dir), str(tmp_path / "ct.nii.gz"), "--model", "median", "-q"]) == 0
    assert read_volume(tmp_path / "ct.nii.gz").same_geometry(source, atol=1e-4)


def test_folder_of_images_goes_to_a_folder(tmp_path, us_png, xray_png):
    folder = tmp_path / "in"
    folder.mkdir()
    for path in (us_png, xray_png):
        (folder / path.name).write_bytes(path.read_bytes())
    assert main(["denoise", str(folder), str(tmp_path / "out"), "--model", "median", "--format", "nrrd", "-q"]) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(p.stem + ".nrrd" for p in (us_png, xray_png))


def test_inputs_whose_names_hold_dots_keep_their_whole_names_in_extra_outputs(tmp_path, ct_series_dir):
    """'{name}' in --report is the input's name less an image suffix only: two series folders 't1.1mm' and
    't1.5mm' each get their own report, where the text after the last dot was once dropped as if it were a suffix
    and the two reports clashed (refused: the same path twice)."""
    import shutil

    from meddenoiselib.io import strip_suffix

    folder, reports = tmp_path / "in", tmp_path / "reports"
    for name in ("t1.1mm", "t1.5mm"):
        shutil.copytree(ct_series_dir, folder / name)
    reports.mkdir()
    args = [
        "denoise",
        str(folder),
        str(tmp_path / "out"),
        "--model",
        "median",
        "--report",
        str(reports / "{name}.json"),
    ]
    assert main([*args, "-q"]) == 0
    assert sorted(p.name for p in reports.iterdir()) == ["t1.1mm.json", "t1.5mm.json"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["t1.1mm", "t1.5mm"]
    # a DICOM file named by its UID keeps its name too; image suffixes go
    assert strip_suffix("1.2.840.113619.2.55") == "1.2.840.113619.2.55"
    assert [strip_suffix(n) for n in ("a.b.nii.gz", "IM1.DCM", "scan.nrrd")] == ["a.b", "IM1", "scan"]


def test_format_applies_to_the_dicom_series_of_a_folder_run(tmp_path, ct_series_dir, us_png):
    """``--format nifti`` on a folder holding a DICOM series and a PNG writes both as NIfTI (the series folder used
    to come out as a DICOM series whatever --format said)."""
    import shutil

    folder = tmp_path / "in"
    shutil.copytree(ct_series_dir, folder / "chest")
    (folder / us_png.name).write_bytes(us_png.read_bytes())
    assert main(["denoise", str(folder), str(tmp_path / "out"), "--model", "median", "--format", "nifti", "-q"]) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["chest.json", "chest.nii.gz", us_png.stem + ".nii.gz"]  # the DICOM series' BIDS sidecar
    assert read_volume(tmp_path / "out" / "chest.nii.gz").same_geometry(read_volume(ct_series_dir), atol=1e-4)
    # without --format a series stays a DICOM series
    assert main(["denoise", str(folder), str(tmp_path / "same"), "--model", "median", "-q"]) == 0
    assert (tmp_path / "same" / "chest").is_dir()


def test_simulate_then_denoise_improves_psnr(tmp_path, mr_nifti):
    noisy_path = tmp_path / "noisy.nii.gz"
    run_cli("simulate", str(mr_nifti), str(noisy_path), "--noise", "gaussian:25", "--seed", "3", "--scaling", "minmax")
    clean, noisy = read_volume(mr_nifti), read_volume(noisy_path)
    assert noisy.array.dtype == clean.array.dtype and noisy.same_geometry(clean)
    scaling = fit_scaling(clean.array, "minmax")
    measured = np.std(scaling.apply(noisy.array) - scaling.apply(clean.array)) * 255
    assert measured == pytest.approx(25, rel=0.1)
    out = tmp_path / "den.nii.gz"
    assert main(["denoise", str(noisy_path), str(out), "--model", "nlm", "-q"]) == 0
    before = psnr(scaling.apply(clean.array), scaling.apply(noisy.array))
    after = psnr(scaling.apply(clean.array), scaling.apply(read_volume(out).array))
    assert after > before + 3
    # same seed, same noise
    again = tmp_path / "n2.nii.gz"
    assert main(["simulate", str(mr_nifti), str(again), "--seed", "3", "--scaling", "minmax", "-q"]) == 0
    np.testing.assert_array_equal(read_volume(tmp_path / "n2.nii.gz").array, noisy.array)


def test_evaluate_writes_table_csv_and_figure(tmp_path, xray_png):
    result = run_cli("evaluate", str(xray_png), "--methods", "median,diffusion", "--sigma", "25", "-o", str(tmp_path))
    assert "| median |" in result.stdout and "| noisy |" in result.stdout
    for name in ("summary.md", "results.csv", "comparison.png"):
        assert (tmp_path / name).stat().st_size > 100
    quiet = run_cli("evaluate", str(xray_png), "--methods", "median", "--sigma", "25", "-o", str(tmp_path / "q"), "-q")
    assert quiet.stdout == "" and quiet.stderr == ""  # --quiet: nothing but errors; the table is in summary.md
    assert "| median |" in (tmp_path / "q" / "summary.md").read_text()


def test_info_prints_geometry_and_dicom_tags(ct_series_dir):
    info = json.loads(run_cli("info", str(ct_series_dir), "--json").stdout)
    assert info["shape_zyx"] == [4, 512, 512] and info["dtype"] == "int16"
    assert info["spacing_xyz_mm"] == pytest.approx([0.9765625, 0.9765625, 2.0])
    assert info["dicom"]["Modality"] == "CT" and info["dicom"]["RescaleIntercept"] == "-1024"
    assert info["slice_axis"] == "0 (array axis, 2 mm): 4 slices"  # what --preview-slice counts
    assert info["auto"] == "kpn-ct-burst3 for CT (DICOM Modality is CT)"  # what denoise's default will run
    assert main(["info", str(ct_series_dir)]) == 0
    # the scan's own noise in flat body tissue, in HU: ~27 HU on this chest series
    assert "HU in flat body tissue (" in info["noise"] and "on 4 slices; the scan's own noise" in info["noise"]
    assert 20.0 < float(info["noise"].split()[0]) < 35.0


def test_the_ct_noise_estimate_reads_added_noise_in_hu(ct_series_dir):
    """Before denoising, on the real chest series: its own noise, and with 25 HU of white noise added the root of
    the sum of squares (within 8 %)."""
    from meddenoiselib.evaluation.report import ct_body_noise_estimate

    volume = read_volume(ct_series_dir)
    own = ct_body_noise_estimate(volume)["noise_hu"]
    noisy = volume.array + np.random.default_rng(2).normal(0.0, 25.0, volume.array.shape)
    added = ct_body_noise_estimate(volume.with_array(noisy.astype(np.float32)))["noise_hu"]
    assert 20.0 < own < 35.0
    assert added == pytest.approx(np.hypot(own, 25.0), rel=0.08), (own, added)


def test_info_describes_a_4d_series_that_denoise_reads(tmp_path, mr_nifti, capsys):
    import nibabel as nib

    head = nib.load(mr_nifti)
    frames = np.stack([np.asarray(head.dataobj)] * 3, axis=-1)
    image = nib.Nifti1Image(frames, head.affine)
    image.header.set_xyzt_units("mm", "sec")
    image.header["pixdim"][4] = 2.5
    nib.save(image, tmp_path / "fmri.nii.gz")
    assert main(["info", str(tmp_path / "fmri.nii.gz"), "--json"]) == 0  # was: "4D data is not supported"
    info = json.loads(capsys.readouterr().out)
    assert info["frames"] == 3 and info["shape_zyx"] == [24, 58, 58] and info["dtype"] == "int16"
    assert info["spacing_xyz_mm"] == pytest.approx([4.0, 4.0, 5.0])
    # the frames' air holds the scanner's floor: MR from the NIfTI's values, the floor removed after the model
    assert info["auto"].startswith("kpn-burst3 for MR (its background is the noise floor of a magnitude MR image")
    assert "then its magnitude noise floor removed" in info["auto"]
    # commands that take one volume say which one reads it
    assert main(["simulate", str(tmp_path / "fmri.nii.gz"), str(tmp_path / "x.nii.gz"), "--noise", "gaussian:5"]) == 1
    assert "4D data (shape (58, 58, 24, 3)): `denoise` reads it as a 4D series" in capsys.readouterr().err


def test_models_json_lists_networks_and_baselines():
    entries = json.loads(run_cli("models", "--json").stdout)
    by_name = {e["name"]: e for e in entries}
    assert by_name["dncnn"]["parameters"] == 557_057 and by_name["dncnn"]["kind"] == "network"
    assert by_name["median"]["kind"] == "baseline"
    for name in ("dran", "irunet", "dncnn", "rdn", "conv-dae", "kpn"):
        assert name in by_name
    assert all({"name", "kind", "parameters", "spatial_dims", "weights"} <= set(e) for e in entries)


def test_demo_runs_on_bundled_samples(tmp_path):
    result = run_cli("demo", "--output", str(tmp_path / "demo"))
    assert "synthetic Gaussian noise sigma 25" in result.stdout
    for name in ("ct_chest_denoised.nii.gz", "mr_head_denoised.nii.gz", "metrics.md", "comparison.png"):
        assert (tmp_path / "demo" / name).is_file()
    assert len(list((tmp_path / "demo" / "ct_chest_denoised").iterdir())) == 4


def test_train_subcommand_writes_weights_and_card(tmp_path, xray_png, us_png):
    out = tmp_path / "run"
    run_cli(
        "train",
        str(xray_png),
        "--val-inputs",
        str(us_png),
        "--network",
        "conv-dae",
        "--steps",
        "4",
        "--batch-size",
        "2",
        "--patch",
        "32",
        "--val-every",
        "2",
        "--output",
        str(out),
        "--no-progress",
    )
    card = json.loads((out / "model.json").read_text())
    assert card["training"]["steps"] == 4 and card["architecture"]["network"] == "conv-dae"
    assert (out / "model.safetensors").is_file() and (out / "log.csv").read_text().count("\n") == 3


@pytest.mark.parametrize(
    "args, code, fragment",
    [
        (["denoise", "/no/such/scan.nii.gz", "/tmp/x.nii.gz", "--model", "median"], 1, "no such file"),
        (["denoise", "in", "out", "--overlap", "1.5"], 2, "expected a number in [0, 1)"),
        (["denoise", "in"], 2, "required"),
        (["simulate", "in.nii", "out.nii", "--noise", "salt:3"], 2, "unknown noise model"),
        (["frobnicate"], 2, "invalid choice"),
    ],
)
def test_errors_exit_codes(capsys, args, code, fragment):
    assert main(args) == code
    assert fragment in capsys.readouterr().err


def test_dicom_media_with_a_dicomdir_is_searched_into_its_series_folders(tmp_path, ct_series_dir, capsys):
    """A CD or a PACS export: DICOMDIR at the top, the series in patient / study / series folders (files without a
    suffix). The top folder was "no images or DICOM series found"; each series is now found and written under its
    path's name (two studies' series folders may share a name)."""
    from pydicom.fileset import FileSet

    media = tmp_path / "cd"
    files = FileSet()
    for study, uid_root in (("1", "1.2.826.0.1.3680043.2.1125.1"), ("2", "1.2.826.0.1.3680043.2.1125.2")):
        for path in sorted(ct_series_dir.iterdir()):
            dataset = pydicom.dcmread(path)
            dataset.PatientID, dataset.PatientName, dataset.StudyID = "ANON", "Anon", study
            dataset.StudyInstanceUID = uid_root
            dataset.SeriesInstanceUID = uid_root + ".1"
            dataset.SOPInstanceUID = f"{uid_root}.1.{dataset.InstanceNumber}"
            dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
            files.add(dataset)
    files.write(media)
    assert (media / "DICOMDIR").is_file() and not any(media.glob("*/*.dcm"))

    assert main(["denoise", str(media), str(tmp_path / "out"), "--model", "median", "-q"]) == 0
    outputs = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert outputs == ["PT000000_ST000000_SE000000", "PT000000_ST000001_SE000000"]
    for name in outputs:
        assert read_volume(tmp_path / "out" / name).shape == (4, 512, 512)
    assert main(["info", str(media)]) == 0
    assert capsys.readouterr().out.count("dicom-series  4x512x512") == 2


def test_a_series_folder_with_a_broken_link_is_refused_not_split_into_slices(tmp_path, ct_series_dir, capsys):
    """A link whose target has gone makes GDCM leave out the file next to it or find no series at all; the CLI
    denoised such a folder as separate single slices (exit 0). It now names the link and writes nothing."""
    folder = tmp_path / "linked"
    folder.mkdir()
    for source in sorted(ct_series_dir.glob("*.dcm")):
        (folder / source.name).symlink_to(source)
    (folder / "00-slice200.dcm").symlink_to(tmp_path / "gone.dcm")  # sorts last: GDCM drops a real slice
    for out in (tmp_path / "out", tmp_path / "out.nii.gz"):
        assert main(["denoise", str(folder), str(out), "--model", "median", "-q"]) == 1
        err = capsys.readouterr().err
        assert "00-slice200.dcm: a link to" in err and "does not exist" in err and err.count("\n") == 1
        assert not out.exists()


def test_quiet_stays_quiet_while_codecs_fail_over(tmp_path, capfd):
    """A 12-bit lossy JPEG DICOM (pydicom's JPEG-lossy.dcm): each decoder tried before GDCM succeeds printed
    "Unsupported JPEG data precision 12" to descriptor 2, past ``--quiet``. Those lines now go to the log."""
    from ..conftest import dicom_testdata

    source = dicom_testdata("JPEG-lossy.dcm")
    assert main(["denoise", str(source), str(tmp_path / "out.nrrd"), "--model", "median", "-q"]) == 0
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert (tmp_path / "out.nrrd").is_file()


def test_residual_and_quality_report(tmp_path, mr_nifti):
    noisy_path = tmp_path / "noisy.nii.gz"
    simulate = ["simulate", str(mr_nifti), str(noisy_path), "--noise", "gaussian:20", "--scaling", "minmax", "-q"]
    assert main(simulate) == 0
    out, residual, report = tmp_path / "den.nii.gz", tmp_path / "res.nii.gz", tmp_path / "report.json"
    noise_map = tmp_path / "noise.nrrd"
    assert (
        main(
            [
                "denoise",
                str(noisy_path),
                str(out),
                "--model",
                "median",
                "--residual",
                str(residual),
                "--noise-map",
                str(noise_map),
                "--report",
                str(report),
                "-q",
            ]
        )
        == 0
    )
    noisy, denoised, removed = read_volume(noisy_path), read_volume(out), read_volume(residual)
    assert removed.array.dtype == np.float32 and removed.same_geometry(noisy)
    np.testing.assert_array_equal(removed.array, noisy.array.astype(np.float32) - denoised.array)
    # the noise map is the local SD of that residual, in the scan's units, on the scan's grid
    mapped = read_volume(noise_map)
    assert mapped.array.dtype == np.float32 and mapped.same_geometry(noisy)
    np.testing.assert_allclose(mapped.array, local_noise_sd(removed.array, (-2, -1)), rtol=1e-5, atol=1e-3)
    true_sd = 20 / 255 * float(np.ptp(read_volume(mr_nifti).array))  # simulate's sigma in the MR's units
    head = read_volume(mr_nifti).array > np.percentile(read_volume(mr_nifti).array, 60)
    # in the MR's own units (not 0-255, not [0, 1]); a 3x3x3 median of 4 mm voxels also takes some anatomy (1.19x)
    assert 0.5 * true_sd < np.median(mapped.array[head]) < 1.5 * true_sd
    values = json.loads(report.read_text())
    assert values["method"] == "median" and values["sigma_used_0_255"] > 5  # estimated ('auto')
    # int16 output clips the noise below 0 in the MR background, so the estimate reads lower than 20
    assert 10 < values["noise_sigma_before_0_255"] < 22
    assert values["noise_sigma_after_0_255"] < 0.5 * values["noise_sigma_before_0_255"]
    assert abs(values["residual_neighbour_correlation"]) < 0.5


def test_a_2d_image_gets_the_eight_view_ensemble_by_default(tmp_path, xray_png):
    """Default flags on a 2D file average 8 flips/rotations (a volume gets none, see the inference tests); the
    report says so, and ``--ensemble 1`` turns it off."""
    reports = {}
    for name, extra in (("default", []), ("off", ["--ensemble", "1"])):
        report = tmp_path / f"{name}.json"
        args = ["denoise", str(xray_png), str(tmp_path / f"{name}.png"), "--report", str(report), "-q", *extra]
        assert main(args) == 0
        reports[name] = json.loads(report.read_text())
    assert reports["default"]["ensemble_views"] == 8
    assert "ensemble_views" not in reports["off"]
    default, off = read_volume(tmp_path / "default.png").array, read_volume(tmp_path / "off.png").array
    assert 0 < np.abs(default.astype(int) - off.astype(int)).max() <= 10  # the same model, averaged views
