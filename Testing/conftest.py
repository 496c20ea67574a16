"""Shared fixtures: paths of the real images committed with the package and the tests."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from meddenoiselib.demo import sample_path

DATA = Path(__file__).resolve().parent / "data"


def pytest_configure(config):
    """Under pytest-xdist (``-n 2``) each worker computes on one thread, and so do the CLI subprocesses it starts:
    two workers with two threads each on two cores would spend their time waiting for each other."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def ct_series_dir() -> Path:
    """The bundled 4-slice chest CT DICOM series (uint16 stored, intercept -1024)."""
    return sample_path("ct_chest")


@pytest.fixture(scope="session")
def mr_nifti() -> Path:
    """The bundled 58x58x24 int16 head MR NIfTI, 4x4x5 mm."""
    return sample_path("mr_head")


@pytest.fixture(scope="session")
def mr_png() -> Path:
    """The 256x256 brain slice of the test data (8-bit; its air holds dim values of its own)."""
    return DATA / "mr_skimage_brain_slice5.png"


@pytest.fixture(scope="session")
def us_png() -> Path:
    return DATA / "us_hc18_131_HC.png"


@pytest.fixture(scope="session")
def xray_png() -> Path:
    return DATA / "xray_nih_00027426_000.png"


@pytest.fixture(scope="session")
def ct_crop() -> np.ndarray:
    """128x128 float32 crop of a real chest CT slice, min-max normalized to [0, 1]."""
    return np.load(DATA / "ct_chest_slice095_crop128.npy")


@pytest.fixture()
def ct_series_copy(tmp_path, ct_series_dir) -> Path:
    """A writable copy of the sample series (tests that corrupt files work on this)."""
    target = tmp_path / "ct_series"
    shutil.copytree(ct_series_dir, target)
    for f in target.iterdir():
        f.chmod(0o644)
    return target


def digest_tree(path: Path) -> dict[str, str]:
    """sha256 of every file under ``path`` (or of ``path`` itself)."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def brain_mask(head: np.ndarray) -> np.ndarray:
    """Boolean ``(Z, Y, X)``: each slice of a head MR above 20 % of its maximum, grown by 2 pixels and filled, as a
    brain mask or skull-stripping leaves it (its background is connected to the slices' edges)."""
    from scipy import ndimage

    top = head.max()
    return np.stack([ndimage.binary_fill_holes(ndimage.binary_dilation(s > 0.2 * top, iterations=2)) for s in head])


def rician_head_frames(weights, slices: slice, seed: int, sigma: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """The 4D MR frames the DICOM frames tests write: ``(F, Z, 58, 58)`` clean frames (``slices`` of the bundled head
    MR, frame ``f`` scaled by ``weights[f]``) and their Rician magnitude (``sigma`` in the head's units, generator
    ``seed``), rounded to uint16."""
    import nibabel as nib

    head = np.asarray(nib.load(str(sample_path("mr_head"))).dataobj, dtype=np.float64).transpose(2, 1, 0)[slices]
    clean = np.stack([head * w for w in weights])
    rng = np.random.default_rng(seed)
    noisy = np.hypot(clean + rng.normal(0, sigma, clean.shape), rng.normal(0, sigma, clean.shape))
    return clean, np.rint(noisy).astype(np.uint16)


def psnr_to_peak(clean: np.ndarray, result: np.ndarray) -> float:
    """PSNR (dB) of ``result`` against ``clean``, the data range ``clean``'s maximum (of an MR frame: its peak)."""
    return float(10 * np.log10(clean.max() ** 2 / np.mean((clean - result.astype(np.float64)) ** 2)))


MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"


def new_dicom_dataset(sop_class: str = MR_IMAGE_STORAGE, study: str | None = None, series: str | None = None):
    """A new DICOM data set for tests that write their own files: file meta (Explicit VR Little Endian), SOP class
    and a new SOP instance UID, the study and series UIDs (new ones unless given). The caller adds the rest and
    writes it with ``pydicom.dcmwrite(path, ds, enforce_file_format=True)``."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study or generate_uid(), series or generate_uid()
    return ds


def dicom_testdata(name: str) -> Path:
    """A real file from pydicom's bundled test data or the ``pydicom-data`` package; the test is skipped when the
    file is absent (never downloaded)."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not installed (pydicom-data)")
    return Path(path)


def leftover_temporaries(root: Path) -> list[Path]:
    """Hidden temporaries (``.<name>.tmp-<hex>``) anywhere under ``root``."""
    from meddenoiselib.io.atomic import TEMPORARY_MARK

    return [p for p in Path(root).rglob("*") if TEMPORARY_MARK in p.name]
