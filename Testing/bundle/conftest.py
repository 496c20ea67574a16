"""Fixtures for the MONAI bundle tests: a tiny noisy data set built from the real samples, and helpers that run the
bundle's real commands (``python -m monai.bundle ...``, ``torchrun ... -m monai.bundle run``) as subprocesses.

The data set (``dataset/``) holds three inputs, each with its clean original kept aside for PSNR:

- ``mr_head.nii.gz``: the 58x58x24 int16 head MR sample (oblique 4x4x5 mm affine), with noise;
- ``ct_crop.nii.gz``: a 64x64x4 int16 crop (rows 260-323, columns 220-283) of the CT sample, in HU, with noise;
- ``ct_series.001/``: a derived 4-slice DICOM series, a 64x64 crop (rows 200-263, columns 180-243) of the CT sample
  written with pydicom (each source header copied; Rows/Columns, ImagePositionPatient and new UIDs set; pixels
  stored as signed 16-bit HU so the added noise is never clipped).

Noise: Gaussian, sigma = 25 on the 0-255 scale of the min-max normalized volume (``meddenoiselib.evaluation.add_noise``,
seeded), then back to the original units and rounded to int16.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from meddenoiselib.bundle import BUNDLE_ROOT
from meddenoiselib.demo import sample_path
from meddenoiselib.evaluation import add_noise
from meddenoiselib.io import read_volume

SIGMA_255 = 25.0
CT_NIFTI_CROP = (slice(260, 324), slice(220, 284))  # (rows, columns) of the 512x512 slices
CT_DICOM_CROP = (slice(200, 264), slice(180, 244))
TIMEOUT = 600


@dataclass
class BundleCase:
    """One input of the test data set: what the bundle must reproduce (geometry, dtype) and the clean reference."""

    name: str  # the input's name in dataset/ (file or folder)
    output: str  # the expected output file name
    clean: np.ndarray  # (x, y, z), MONAI/nibabel index order, original units
    noisy: np.ndarray  # (x, y, z), what was written
    affine: np.ndarray  # expected IJK-to-RAS of the output, computed independently of the bundle's reader
    companions: tuple[str, ...] = ()  # files written beside the output (a DICOM input's JSON sidecar)

    @property
    def written(self) -> tuple[str, ...]:
        return (self.output, *self.companions)


@dataclass
class BundleData:
    dataset_dir: Path
    cases: dict[str, BundleCase] = field(default_factory=dict)


def noisy_like(clean: np.ndarray, seed: int) -> np.ndarray:
    """``clean`` plus seeded Gaussian noise of sigma 25/255 of its range, rounded to int16."""
    low, high = float(clean.min()), float(clean.max())
    normalized = (clean.astype(np.float64) - low) / (high - low)
    noisy = add_noise(normalized.astype(np.float32), SIGMA_255, seed).astype(np.float64) * (high - low) + low
    info = np.iinfo(np.int16)
    return np.clip(np.rint(noisy), info.min, info.max).astype(np.int16)


def dicom_series_affine(folder: Path) -> np.ndarray:
    """IJK-to-RAS of a DICOM series from its headers alone (i along rows' direction, j down columns, k by position)."""
    headers = [pydicom.dcmread(str(f), stop_before_pixels=True) for f in sorted(folder.glob("*.dcm"))]
    orientation = np.asarray(headers[0].ImageOrientationPatient, dtype=float)
    row, column = orientation[:3], orientation[3:]
    normal = np.cross(row, column)
    headers.sort(key=lambda h: float(normal @ np.asarray(h.ImagePositionPatient, dtype=float)))
    first = np.asarray(headers[0].ImagePositionPatient, dtype=float)
    second = np.asarray(headers[1].ImagePositionPatient, dtype=float)
    row_spacing, column_spacing = (float(v) for v in headers[0].PixelSpacing)
    lps = np.eye(4)
    lps[:3, 0] = row * column_spacing
    lps[:3, 1] = column * row_spacing
    lps[:3, 2] = second - first
    lps[:3, 3] = first
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def write_cropped_series(target: Path, rows: slice, columns: slice, pixels_zyx: np.ndarray, source_files) -> None:
    """Write a derived series: each source file's header with the cropped, signed 16-bit HU pixels ``pixels_zyx``."""
    target.mkdir(parents=True)
    series_uid = generate_uid()
    for k, source in enumerate(source_files):
        ds = pydicom.dcmread(source)
        orientation = np.asarray(ds.ImageOrientationPatient, dtype=float)
        row_spacing, column_spacing = (float(v) for v in ds.PixelSpacing)
        position = np.asarray(ds.ImagePositionPatient, dtype=float)
        position = position + columns.start * column_spacing * orientation[:3]
        position = position + rows.start * row_spacing * orientation[3:]
        ds.ImagePositionPatient = [float(v) for v in position]
        slice_pixels = np.ascontiguousarray(pixels_zyx[k].astype(np.int16))
        ds.Rows, ds.Columns = slice_pixels.shape
        ds.PixelRepresentation = 1
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        for keyword in ("SmallestImagePixelValue", "LargestImagePixelValue", "PixelPaddingValue"):
            if keyword in ds:
                delattr(ds, keyword)
        ds.PixelData = slice_pixels.tobytes()
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesDescription = "MedDenoise bundle test: cropped, noisy"
        ds.save_as(str(target / f"slice{k:02d}.dcm"))


@pytest.fixture(scope="session")
def bundle_data(tmp_path_factory) -> BundleData:
    root = tmp_path_factory.mktemp("bundle_data")
    data = BundleData(dataset_dir=root / "dataset")
    data.dataset_dir.mkdir()

    # 1. the MR head sample, noisy, written with its own header and affine
    mr = nib.load(str(sample_path("mr_head")))
    clean = np.asarray(mr.dataobj)
    noisy = noisy_like(clean, seed=11)
    nib.save(nib.Nifti1Image(noisy, mr.affine, mr.header), str(data.dataset_dir / "mr_head.nii.gz"))
    data.cases["mr_head"] = BundleCase("mr_head.nii.gz", "mr_head_denoised.nii.gz", clean, noisy, mr.affine)

    # 2. and 3. crops of the CT sample (read with the library: HU, slices ascending along the normal)
    ct = read_volume(sample_path("ct_chest"))
    ct_affine = ct.ijk_to_ras()
    rows, columns = CT_NIFTI_CROP
    clean_zyx = ct.array[:, rows, columns]
    noisy_zyx = noisy_like(clean_zyx, seed=12)
    shift = np.eye(4)
    shift[:3, 3] = [columns.start, rows.start, 0]
    affine = ct_affine @ shift
    nib.save(nib.Nifti1Image(noisy_zyx.transpose(2, 1, 0), affine), str(data.dataset_dir / "ct_crop.nii.gz"))
    data.cases["ct_crop"] = BundleCase(
        "ct_crop.nii.gz", "ct_crop_denoised.nii.gz", clean_zyx.transpose(2, 1, 0), noisy_zyx.transpose(2, 1, 0), affine
    )

    rows, columns = CT_DICOM_CROP
    clean_zyx = ct.array[:, rows, columns]
    noisy_zyx = noisy_like(clean_zyx, seed=13)
    series = data.dataset_dir / "ct_series.001"  # a dot in a folder name is not an extension
    write_cropped_series(series, rows, columns, noisy_zyx, ct.source.dicom_files)
    data.cases["ct_series"] = BundleCase(
        series.name,
        "ct_series.001_denoised.nii.gz",
        clean_zyx.transpose(2, 1, 0),
        noisy_zyx.transpose(2, 1, 0),
        dicom_series_affine(series),
        companions=("ct_series.001_denoised.json",),
    )
    # not inputs: the bundle must skip them
    (data.dataset_dir / "notes.txt").write_text("not an image\n")
    return data


def bundle_config(name: str = "inference.json") -> str:
    return str(Path(BUNDLE_ROOT) / "configs" / name)


def run_command(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a command; fail with its full output when it exits non-zero."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    result = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd, env=env, check=False)
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)}\nexit {result.returncode}\n"
            f"stdout:\n{result.stdout[-8000:]}\nstderr:\n{result.stderr[-8000:]}"
        )
    return result


def torchrun_launcher() -> list[str]:
    """``torchrun`` of this interpreter's environment (``python -m torch.distributed.run`` if the script is absent)."""
    torchrun = Path(sys.executable).with_name("torchrun")
    return [str(torchrun)] if torchrun.is_file() else [sys.executable, "-m", "torch.distributed.run"]


def monai_bundle(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m monai.bundle <args>``."""
    return run_command([sys.executable, "-m", "monai.bundle", *args], cwd=cwd)


def run_bundle(dataset_dir: Path, output_dir: Path, *options: str, cwd: Path | None = None):
    """``python -m monai.bundle run`` with the inference config, as the README says, and any further options."""
    return monai_bundle(
        "run",
        "--config_file",
        bundle_config(),
        "--bundle_root",
        BUNDLE_ROOT,
        "--dataset_dir",
        str(dataset_dir),
        "--output_dir",
        str(output_dir),
        *options,
        cwd=cwd,
    )


@pytest.fixture(scope="session")
def single_run(bundle_data, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The bundle run once on the data set, exactly as the README says, from an unrelated working directory."""
    output_dir = tmp_path_factory.mktemp("single") / "out"
    result = run_bundle(bundle_data.dataset_dir, output_dir, cwd=tmp_path_factory.mktemp("cwd"))
    return output_dir, result


@pytest.fixture(scope="session")
def multi_run(bundle_data, tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """The multi-GPU config on CPU: ``torchrun --nproc_per_node=2`` with gloo, per-rank logs under ``logs/``."""
    base = tmp_path_factory.mktemp("multi")
    output_dir, log_dir = base / "out", base / "logs"
    configs = f"['{bundle_config()}','{bundle_config('multi_gpu_inference.json')}']"
    result = run_command(
        [
            *torchrun_launcher(),
            "--standalone",
            "--nproc_per_node=2",
            "--log-dir",
            str(log_dir),
            "--redirects",
            "3",
            "-m",
            "monai.bundle",
            "run",
            "--config_file",
            configs,
            "--bundle_root",
            BUNDLE_ROOT,
            "--dataset_dir",
            str(bundle_data.dataset_dir),
            "--output_dir",
            str(output_dir),
        ],
        cwd=base,
    )
    return output_dir, log_dir, result


def run_in_process(bundle_root: Path | str = BUNDLE_ROOT, **overrides) -> None:
    """The bundle's inference config run in this process (MONAI's ``ConfigWorkflow``) on the CPU with ``overrides``."""
    from monai.bundle import ConfigWorkflow

    workflow = ConfigWorkflow(
        config_file=str(Path(bundle_root) / "configs" / "inference.json"),
        logging_file=False,
        workflow_type="infer",
        bundle_root=str(bundle_root),
        device="$torch.device('cpu')",
        **overrides,
    )
    path = list(sys.path)  # ConfigWorkflow.run() prepends the bundle root
    try:
        workflow.initialize()
        assert workflow.check_properties() == []  # every required "infer" property of a MONAI bundle is defined
        workflow.run()
        workflow.finalize()
    finally:
        sys.path[:] = path


@pytest.fixture()
def mr_crop(tmp_path) -> Path:
    """A folder holding one 42 x 42 x 8 int16 crop of the MR sample."""
    data = tmp_path / "data"
    data.mkdir()
    mr = nib.load(str(sample_path("mr_head")))
    nib.save(mr.slicer[8:50, 8:50, 6:14], str(data / "mr.nii.gz"))
    return data
