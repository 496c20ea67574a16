"""The training / held-out split of ../shared/data used for every shipped model and the benchmark.

Files are held out whole (never patches of a training file); contiguous slice ranges are held out for the CT
series because neighbouring slices are nearly identical. Files without a licence (the MID-DRAN and IRUNet seed
images) are not used for training; the IRUNet pairs are used only for the IRUNet evaluation protocol.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_ROOT", "train_files", "validation_files", "benchmark_references", "irunet_pairs"]

DATA_ROOT = Path(os.environ.get("MEDDENOISE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _chest(first: int, last: int) -> list[str]:
    return [f"ct/itkelastix_chest_ct_series00/00-slice{i:03d}.dcm" for i in range(first, last + 1)]


def _head(first: int, last: int) -> list[str]:
    return [f"ct/dcm_qa_ct_ge_head/{i:02d}.dcm" for i in range(first, last + 1)]


def _ultrasound() -> list[str]:
    names = sorted(p.name for p in (DATA_ROOT / "us" / "hc18_train").glob("*_HC.png"))
    return [f"us/hc18_train/{n}" for n in names]


_US = _ultrasound()  # 60 images; the first 50 train, the last 10 are held out

#: the Philips head phantom (1 mm slices, iterative reconstruction): all 24 slices train CT models
_PHILIPS_PHANTOM = [f"ct/dcm_qa_ct_philips_head_phantom/I{i}.dcm" for i in range(600, 831, 10)]

TRAIN = (
    _chest(38, 89)  # slices 090-101 held out (098-101 are the bundled sample)
    + _head(1, 22)  # 23-28 held out
    + _PHILIPS_PHANTOM
    + ["ct/dicompyler_breast_ct/ct.0.dcm"]
    + _US[:50]
    + [
        "mr/niivue_mr_gd/MR_Gd.nii.gz",
        "mr/dipy/S0_10slices.nii.gz",
        "mr/dipy/aniso_vox.nii.gz",
        "mr/nibabel/anatomical.nii",
        "mr/itkelastix_2d_brain_slices/CT_2D_head_fixed.mha",
        "mr/itkelastix_2d_brain_slices/CT_2D_head_moving.mha",
        "xray/nih_cxr14/00000001_000.png",
        "xray/nih_cxr14/00000002_000.png",
        "xray/nih_cxr14/00000013_003.png",
        "other/skimage_fundus/retina.jpg",
    ]
    + [f"microscopy/itkelastix_lung_sem/2016_12_02_0101_s00_{i:02d}.png" for i in range(1, 11)]
)

VALIDATION = (
    _chest(90, 101)
    + _head(23, 28)
    + _US[50:]
    + [
        "mr/skimage_brain/brain.tiff",
        "xray/nih_cxr14/00027426_000.png",
        "microscopy/itkelastix_lung_sem/2016_12_02_0101_s00_11.png",
        "microscopy/itkelastix_lung_sem/2016_12_02_0101_s00_12.png",
        "histology/skimage_ihc/ihc.png",
    ]
)

#: the benchmark's references: (modality, file, slice index or None)
BENCHMARK = (
    ("CT", "ct/itkelastix_chest_ct_series00/00-slice092.dcm", None),
    ("CT", "ct/itkelastix_chest_ct_series00/00-slice096.dcm", None),
    ("CT", "ct/dcm_qa_ct_ge_head/24.dcm", None),
    ("CT", "ct/dcm_qa_ct_ge_head/27.dcm", None),
    ("MR", "mr/skimage_brain/brain.tiff", 3),
    ("MR", "mr/skimage_brain/brain.tiff", 5),
    ("MR", "mr/skimage_brain/brain.tiff", 7),
    ("US", "us/hc18_train/131_HC.png", None),
    ("US", "us/hc18_train/137_HC.png", None),
    ("US", "us/hc18_train/157_HC.png", None),
    ("X-ray", "xray/nih_cxr14/00027426_000.png", None),
    ("Microscopy", "microscopy/itkelastix_lung_sem/2016_12_02_0101_s00_11.png", None),
    ("Microscopy", "microscopy/itkelastix_lung_sem/2016_12_02_0101_s00_12.png", None),
    ("Histology", "histology/skimage_ihc/ihc.png", None),
)


#: held-out CT for the real-noise benchmark (benchmarks/real_noise.py): (name, files, as a volume?). Never trained
#: on. The fo-dicom slices carry no licence of their own: used here for evaluation only, inside the project.
REAL_NOISE_CT = (
    ("chest-2mm", _chest(90, 101), True),
    ("head-ge", _head(23, 28), True),
    ("water-phantom", ["ct/rtutils_ge_water_phantom/ct_1.dcm", "ct/rtutils_ge_water_phantom/ct_2.dcm"], True),
    ("lumbar-spine", ["ct/fodicom_samples/GH1308.dcm"], False),
    ("chest-ge", ["ct/fodicom_samples/ct.dcm"], False),
    ("skull-base", ["ct/fodicom_samples/IM-0001-0001-0001.dcm"], False),
)


#: held-out real MR for ``benchmarks/real_mr.py``: (name, file, RGB channel or None), one 2D slice each. In no other
#: list: no model trained on them and no setting was chosen on them. The MID-DRAN images have no licence file: read
#: from the data folder for evaluation only, never copied into the repository.
REAL_MR = (
    ("t1-coronal", "mr/dipy/t1_coronal_slice.npy", None),
    *(
        (f"lgg{k}-{'abc'[c]}", f"mr/mid_dran_lgg_rgb/{name}", c)
        for k, name in ((1, "1.png"), (2, "2.tif"))
        for c in range(3)
    ),
)


def train_files() -> list[Path]:
    """Training files, absolute."""
    return [DATA_ROOT / f for f in TRAIN]


def validation_files() -> list[Path]:
    """Held-out files, absolute."""
    return [DATA_ROOT / f for f in VALIDATION]


def benchmark_references() -> list[tuple[str, Path, int | None]]:
    """(modality, file, slice) of each benchmark reference."""
    return [(m, DATA_ROOT / f, k) for m, f, k in BENCHMARK]


def irunet_pairs() -> list[tuple[str, Path, Path, int]]:
    """IRUNet's clean/noisy histology pairs: (name, clean, noisy, sigma255)."""
    root = DATA_ROOT / "histology" / "irunet_pairs"
    return [
        ("Epoch_results", root / "Epoch_results_clean.tif", root / "Epoch_results_noise.tif", 25),
        ("55", root / "55_clean.tif", root / "55_noise.tif", 50),
    ]
