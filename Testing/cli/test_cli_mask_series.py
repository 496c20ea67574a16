"""``denoise --mask FILE`` and 4D NIfTI/NRRD input through the command line (in-process ``main`` and a real child)."""

from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np

from meddenoiselib.cli import main
from meddenoiselib.evaluation import local_noise_sd
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import read_series, read_volume
from meddenoiselib.io.nrrd import read_nrrd_header

from ..conftest import digest_tree


def _affine() -> np.ndarray:
    affine = np.diag([1.1, 0.9, 2.5, 1.0])
    affine[:3, 3] = [-30.0, 12.5, 40.0]
    affine[0, 1] = 0.2
    return affine


def _perfusion(tmp_path, seed=0):
    """A (X, Y, Z, T) = (40, 36, 6, 3) int16 NIfTI series: a bright disc plus noise, TR 2 s."""
    x, y = np.meshgrid(np.arange(40), np.arange(36), indexing="ij")
    disc = ((x - 20) ** 2 + (y - 18) ** 2 < 120).astype(float) * 800 + 200
    rng = np.random.default_rng(seed)
    data = np.stack([np.stack([disc + 50 * t for _ in range(6)], axis=-1) for t in range(3)], axis=-1)
    data = np.rint(data + rng.normal(0, 60, data.shape)).astype(np.int16)
    image = nib.Nifti1Image(data, _affine())
    image.header["pixdim"][4] = 2.0
    image.header.set_xyzt_units("mm", "sec")
    path = tmp_path / "perfusion.nii.gz"
    nib.save(image, str(path))
    return path, data


def _mask(tmp_path, affine=None, name="mask.nii.gz"):
    inside = np.zeros((40, 36, 6), np.uint8)
    inside[10:30, 8:28, 1:5] = 1
    nib.save(nib.Nifti1Image(inside, _affine() if affine is None else affine), str(tmp_path / name))
    return tmp_path / name, inside.astype(bool)


def test_4d_nifti_with_mask_is_denoised_frame_by_frame_in_its_layout(tmp_path):
    source, data = _perfusion(tmp_path)
    mask_path, inside = _mask(tmp_path)
    before = digest_tree(source)
    out = tmp_path / "out.nii.gz"
    assert (
        main(
            [
                "denoise",
                str(source),
                str(out),
                "--model",
                "median",
                "--sigma",
                "20",
                "--mask",
                str(mask_path),
                "--residual",
                str(tmp_path / "removed.nii.gz"),
                "--noise-map",
                str(tmp_path / "noise.nii.gz"),
                "--report",
                str(tmp_path / "qa.json"),
                "-q",
            ]
        )
        == 0
    )
    written = nib.load(str(out))
    result = np.asanyarray(written.dataobj)
    assert result.shape == data.shape and written.get_data_dtype() == np.int16
    np.testing.assert_array_equal(written.affine, nib.load(str(source)).affine)
    assert written.header["pixdim"][4] == 2.0
    for t in range(3):  # outside the mask every frame is the input, bit for bit
        np.testing.assert_array_equal(result[..., t][~inside], data[..., t][~inside])
    # inside, each frame is what the library gives for the whole series (one scaling for all frames)
    expected = Denoiser("median", device="cpu").denoise(read_series(source), sigma=20 / 255).array
    np.testing.assert_array_equal(
        np.transpose(result, (3, 2, 1, 0))[:, np.transpose(inside, (2, 1, 0))],
        expected[:, np.transpose(inside, (2, 1, 0))],
    )
    assert np.std(result[..., 1][inside].astype(float)) < np.std(data[..., 1][inside].astype(float))
    removed = np.asanyarray(nib.load(str(tmp_path / "removed.nii.gz")).dataobj)
    np.testing.assert_allclose(removed, data.astype(np.float32) - result, atol=1e-3)
    # the noise map: per frame, the local SD of what was removed (zero outside the mask's reach), same layout
    noise = nib.load(str(tmp_path / "noise.nii.gz"))
    np.testing.assert_array_equal(noise.affine, written.affine)
    noise_map = np.asanyarray(noise.dataobj)
    assert noise_map.shape == data.shape and noise_map.dtype == np.float32
    for t in range(3):
        frame = np.transpose(removed[..., t], (2, 1, 0))
        expected_map = local_noise_sd(frame, (-2, -1))
        np.testing.assert_allclose(np.transpose(noise_map[..., t], (2, 1, 0)), expected_map, atol=1e-3)
    assert noise_map[20, 18, 3, 1] > 1 and noise_map[0, 0, 0, 1] == 0  # inside the mask / far outside it
    report = json.loads((tmp_path / "qa.json").read_text())
    assert report["frames"] == 3 and report["shape_zyx"] == [6, 36, 40]
    assert report["noise_sigma_after_0_255"] < report["noise_sigma_before_0_255"]
    assert digest_tree(source) == before


def test_dwi_nrrd_keeps_gradient_axis_first_and_its_keys(tmp_path, mr_nifti):
    """A DWI-style NRRD (gradient axis first, DWMRI key/values) through a real child process."""
    volume = read_volume(mr_nifti)
    frames = np.stack([volume.array[8:12] * (1.0 - 0.2 * g) for g in range(4)]).astype(np.int16)  # (4, 4, 58, 58)
    frames = np.rint(frames + np.random.default_rng(1).normal(0, 30, frames.shape)).astype(np.int16)
    file_array = np.transpose(frames, (1, 2, 3, 0))
    header = (
        "NRRD0004\ntype: short\ndimension: 4\nspace: left-posterior-superior\nsizes: 4 58 58 4\n"
        "space directions: none (4,0,0) (0,4,0) (0,0,5)\nkinds: list domain domain domain\nendian: little\n"
        "encoding: raw\nspace origin: (-100,-100,20)\nmodality:=DWMRI\nDWMRI_b-value:=1000\n"
        + "".join(f"DWMRI_gradient_{g:04d}:={g} 0 1\n" for g in range(4))
        + "\n"
    )
    source = tmp_path / "dwi.nrrd"
    source.write_bytes(header.encode() + np.ascontiguousarray(file_array).astype("<i2").tobytes())
    out = tmp_path / "dwi_denoised.nrrd"
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "meddenoiselib",
            "denoise",
            str(source),
            str(out),
            "--model",
            "nlm",
            "--progress-format",
            "lines",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr
    fractions = [float(line.split()[1]) for line in child.stderr.splitlines() if line.startswith("PROGRESS ")]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0  # one progress over all frames, never back
    fields, keys, _, _ = read_nrrd_header(out)
    assert dict(fields)["kinds"] == "list domain domain domain" and dict(fields)["sizes"] == "4 58 58 4"
    assert keys == [("modality", "DWMRI"), ("DWMRI_b-value", "1000")] + [
        (f"DWMRI_gradient_{g:04d}", f"{g} 0 1") for g in range(4)
    ]
    result = read_series(out)
    assert result.array.shape == frames.shape and result.origin == (-100.0, -100.0, 20.0)
    noisy_error = np.abs(np.diff(frames.astype(float), axis=-1)).mean()
    assert np.abs(np.diff(result.array.astype(float), axis=-1)).mean() < noisy_error  # smoother in every frame


def test_a_diffusion_niftis_gradient_table_goes_beside_its_output(tmp_path, capsys):
    """FSL, MRtrix and BIDS read a diffusion NIfTI with the .bval / .bvec beside it: the output gets copies under its
    own name (planned with the other outputs: an existing one is refused before any work, the input's never
    replaced); a format that cannot take them is warned about."""
    source, _ = _perfusion(tmp_path)
    dwi = source.with_name("dwi.nii.gz")
    source.rename(dwi)
    (tmp_path / "dwi.bval").write_text("0 1000 1000\n")
    (tmp_path / "dwi.bvec").write_text("0 1 0\n0 0 1\n0 0 0\n")
    out = tmp_path / "out" / "dwi_denoised.nii.gz"
    out.parent.mkdir()
    assert main(["denoise", str(dwi), str(out), "--model", "median", "--quiet"]) == 0
    assert read_series(out).frame_label == "gradient"
    for suffix in (".bval", ".bvec"):
        copy = out.with_name("dwi_denoised" + suffix)
        assert copy.read_bytes() == (tmp_path / ("dwi" + suffix)).read_bytes()
    (out.parent / "again.bvec").write_text("not mine\n")
    before = digest_tree(tmp_path)
    assert main(["denoise", str(dwi), str(out.parent / "again.nii.gz"), "--model", "median", "--quiet"]) == 1
    assert "again.bvec" in capsys.readouterr().err and digest_tree(tmp_path) == before  # refused before any work
    assert main(["denoise", str(dwi), str(tmp_path / "dwi.nii"), "--model", "median", "--quiet"]) == 1
    assert "would replace the input's" in capsys.readouterr().err and digest_tree(tmp_path) == before
    assert main(["denoise", str(dwi), str(tmp_path / "dwi.nrrd"), "--model", "median"]) == 0
    assert "gradient table" in capsys.readouterr().err  # warned: a NRRD does not take FSL files beside it
    assert sorted(p.name for p in tmp_path.glob("dwi.*")) == ["dwi.bval", "dwi.bvec", "dwi.nii.gz", "dwi.nrrd"]


def test_mask_on_another_grid_exits_1_with_one_line_and_writes_nothing(tmp_path, capsys):
    source, _ = _perfusion(tmp_path)
    shifted = _affine()
    shifted[:3, 3] += (0.0, 3.0, 0.0)
    mask_path, _ = _mask(tmp_path, shifted, "shifted.nii.gz")
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "meddenoiselib",
            "denoise",
            str(source),
            str(tmp_path / "o.nii.gz"),
            "--model",
            "median",
            "--mask",
            str(mask_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 1
    last = child.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "not on the image's voxel grid (origin differs by 3" in last
    assert "Traceback" not in child.stderr and not (tmp_path / "o.nii.gz").exists()
    # a 3D volume with a mask of another shape (6 slices against 5)
    volume_path = tmp_path / "frame.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((40, 36, 5), np.int16) + 7, _affine()), str(volume_path))
    mask_path, _ = _mask(tmp_path)
    capsys.readouterr()
    assert (
        main(["denoise", str(volume_path), str(tmp_path / "f.nii.gz"), "--model", "median", "--mask", str(mask_path)])
        == 1
    )
    assert "has shape (6, 36, 40) (z, y, x) but the image has (5, 36, 40)" in capsys.readouterr().err
    assert not (tmp_path / "f.nii.gz").exists()
