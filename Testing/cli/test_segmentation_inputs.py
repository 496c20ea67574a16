"""Label maps are masks, not images: a 3D Slicer segmentation (``.seg.nrrd``) or a NIfTI label map given to denoise
is refused in one line that points to ``--mask``; a folder (a saved Slicer scene) skips segmentations; as ``--mask``
a segmentation still restricts denoising."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from meddenoiselib.cli import main

SEGMENTATION_HEADER = """NRRD0004
type: unsigned char
dimension: 3
space: left-posterior-superior
sizes: 24 24 4
space directions: (4,0,0) (0,4,0) (0,0,5)
kinds: domain domain domain
encoding: raw
space origin: (0,0,0)
Segment0_ID:=Segment_1
Segment0_Name:=tumour
Segment0_LabelValue:=1
Segmentation_MasterRepresentation:=Binary labelmap

"""


def _segmentation(path):
    labels = np.zeros((4, 24, 24), np.uint8)
    labels[1:3, 6:18, 6:18] = 1
    path.write_bytes(SEGMENTATION_HEADER.encode() + labels.tobytes())
    return labels.astype(bool)


def test_segmentations_are_refused_skipped_in_folders_and_usable_as_masks(tmp_path, mr_nifti, capsys):
    seg = tmp_path / "scene" / "Segmentation.seg.nrrd"
    seg.parent.mkdir()
    inside = _segmentation(seg)
    code = main(["denoise", str(seg), str(tmp_path / "out.nrrd"), "--quiet"])
    assert code == 1 and not (tmp_path / "out.nrrd").exists()
    assert "Segmentation.seg.nrrd: a 3D Slicer segmentation (segments tumour), not an image to denoise" in (
        capsys.readouterr().err
    )

    assert main(["info", str(seg), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mask"].startswith("a 3D Slicer segmentation (segments tumour): usable")

    # a saved scene: the volume is denoised, the segmentation beside it skipped
    volume = sitk.ReadImage(str(mr_nifti))[:24, :24, :4]
    volume.SetOrigin((0, 0, 0))
    volume.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, 1))
    sitk.WriteImage(volume, str(seg.parent / "head.nrrd"))
    assert main(["denoise", str(seg.parent), str(tmp_path / "out"), "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["head.nrrd"]

    # as a mask it restricts denoising to its inside (the grids match: 4 x 4 x 5 mm, origin 0)
    out = tmp_path / "masked.nrrd"
    assert main(["denoise", str(seg.parent / "head.nrrd"), str(out), "--mask", str(seg), "--quiet"]) == 0
    before, after = sitk.GetArrayFromImage(volume), sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    np.testing.assert_array_equal(after[~inside], before[~inside])
    assert np.any(after[inside] != before[inside])


def test_a_nifti_label_map_is_refused(tmp_path, capsys):
    labels = np.zeros((16, 16, 4), np.int16)
    labels[4:8, 4:8] = 3
    image = nib.Nifti1Image(labels, np.eye(4))
    image.header.set_intent("label")
    nib.save(image, tmp_path / "atlas.nii.gz")
    assert main(["denoise", str(tmp_path / "atlas.nii.gz"), str(tmp_path / "o.nii.gz"), "--quiet"]) == 1
    assert "atlas.nii.gz: a NIfTI label map (intent NIFTI_INTENT_LABEL), not an image to denoise" in (
        capsys.readouterr().err
    )


def test_a_one_bit_png_is_refused_as_input_and_used_as_mask(tmp_path, mr_png, capsys):
    from PIL import Image
    from skimage.io import imread

    grey = imread(mr_png)
    inside = grey > 60
    Image.fromarray(inside).save(tmp_path / "mask.png")  # 1-bit
    assert main(["denoise", str(tmp_path / "mask.png"), str(tmp_path / "o.png"), "--quiet"]) == 1
    assert "mask.png: a 1-bit (bilevel) PNG, a mask or line art, not an image to denoise" in capsys.readouterr().err
    noisy = np.clip(grey + np.random.default_rng(0).normal(0, 12, grey.shape), 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    out = tmp_path / "masked.png"
    assert main(["denoise", str(tmp_path / "noisy.png"), str(out), "--mask", str(tmp_path / "mask.png"), "-q"]) == 0
    result = imread(out).astype(float)
    np.testing.assert_array_equal(result[~inside], noisy[~inside])
    # inside, denoised: the error against the clean slice falls from ~12 grey levels to under half
    assert np.sqrt(np.mean((result - grey)[inside] ** 2)) < 0.5 * np.sqrt(
        np.mean((noisy - grey.astype(float))[inside] ** 2)
    )
