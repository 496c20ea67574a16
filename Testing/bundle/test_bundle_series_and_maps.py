"""The bundle on a folder of several DICOM series and on a datalist file with noise SD maps: what the CLI's
``--all-series`` and ``--noise-sd-map`` do, through MONAI's config workflow (in process; test_bundle_run.py shows
that ``python -m monai.bundle run`` resolves the config the same way).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from meddenoiselib.bundle import datalist_root, find_dataset, load_datalist
from meddenoiselib.demo import sample_path
from meddenoiselib.errors import MedDenoiseError
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import read_volume
from meddenoiselib.transforms import NoiseSDMap

from .conftest import noisy_like, run_in_process, write_cropped_series


def _study(folder: Path) -> dict[str, str]:
    """A study folder holding two series of the CT sample's files, cropped and noisy: ``3 HELICAL CHEST`` (4
    slices) and ``5 SOFT TISSUE`` (3 slices, another crop). Returns {series name: SeriesInstanceUID}."""
    ct = read_volume(sample_path("ct_chest"))
    uids = {}
    for number, description, count, rows, columns, seed in (
        (3, "HELICAL CHEST", 4, slice(260, 308), slice(220, 268), 21),
        (5, "SOFT TISSUE", 3, slice(200, 248), slice(180, 228), 22),
    ):
        part = folder.parent / f"part{number}"
        noisy = noisy_like(ct.array[:count, rows, columns], seed=seed)
        write_cropped_series(part, rows, columns, noisy, ct.source.dicom_files[:count])
        folder.mkdir(exist_ok=True)
        for path in sorted(part.glob("*.dcm")):
            ds = pydicom.dcmread(str(path))
            ds.SeriesNumber, ds.SeriesDescription = number, description
            ds.save_as(str(folder / f"s{number}_{path.name}"))
            uids[f"{number}_{description.replace(' ', '_')}"] = str(ds.SeriesInstanceUID)
        shutil.rmtree(part)
    return uids


def _written(path: Path) -> tuple[np.ndarray, np.ndarray]:
    image = nib.load(str(path))
    return np.asarray(image.dataobj), image.affine


def test_every_series_of_a_study_folder_is_denoised_into_its_own_output(tmp_path):
    """A folder of two series: the datalist has one item per series, and each output, named by the folder and the
    series (the CLI's ``--all-series`` names), is the library's result on that series, on its grid. Before, the
    bundle read the largest series and silently left the other out."""
    study = tmp_path / "data" / "study"
    uids = _study(study)
    items = find_dataset(study.parent)
    assert [(item["series_name"], item["series_uid"]) for item in items] == list(uids.items())  # largest first
    assert {item["image"] for item in items} == {str(study.resolve())}
    assert [item["image"] for item in find_dataset(study.parent, all_series=False)] == [str(study.resolve())]

    out = tmp_path / "out"
    run_in_process(dataset_dir=str(study.parent), output_dir=str(out), model_name="median")
    written = sorted(p.name for p in out.glob("*.nii.gz"))
    assert written == [f"study_{name}_denoised.nii.gz" for name in uids]
    for name, uid in uids.items():
        actual, affine = _written(out / f"study_{name}_denoised.nii.gz")
        series = read_volume(study, series_uid=uid)
        expected = Denoiser("median").denoise(series).array.transpose(2, 1, 0)
        np.testing.assert_array_equal(actual, expected)
        np.testing.assert_allclose(affine, series.ijk_to_ras(), atol=1e-4)
        assert np.abs(actual.astype(np.int32) - series.array.transpose(2, 1, 0)).max() > 0  # denoised, not copied
        sidecar = json.loads((out / f"study_{name}_denoised.json").read_text())
        assert sidecar["SeriesNumber"] == int(name.split("_")[0])  # the series' own DICOM values beside it

    # the folder given as dataset_dir itself: its outputs land in output_dir under the same names
    out_direct = tmp_path / "out_direct"
    run_in_process(dataset_dir=str(study), output_dir=str(out_direct), model_name="median")
    assert sorted(p.name for p in out_direct.glob("*.nii.gz")) == written


def test_a_datalist_file_gives_noise_sd_maps_as_the_cli(tmp_path):
    """``--datalist_file``: an MR crop with a per-voxel noise SD map (noise rising left to right) is denoised exactly as
    the library's ``Denoiser("nlm").denoise(volume, NoiseSDMap(map))`` (the CLI's ``--noise-sd-map``), closer to the
    clean image than with one estimated level; an item without a map is denoised as before, one with ``"auto"`` with
    the map the library reads from it. Relative paths are the
    JSON file's; outputs mirror the inputs' layout below their common folder."""
    mr = nib.load(str(sample_path("mr_head")))
    clean = np.asarray(mr.dataobj)[8:50, 8:50, 6:14].astype(np.float64)  # (x, y, z)
    affine = mr.slicer[8:50, 8:50, 6:14].affine
    sd = np.broadcast_to(np.linspace(5.0, 60.0, clean.shape[0])[:, None, None], clean.shape)
    noisy = np.rint(clean + np.random.default_rng(5).normal(size=clean.shape) * sd).astype(np.int16)
    data = tmp_path / "data"
    (data / "scans").mkdir(parents=True)
    (data / "maps").mkdir()
    nib.save(nib.Nifti1Image(noisy, affine), str(data / "scans" / "mr.nii.gz"))
    nib.save(nib.Nifti1Image(sd.astype(np.float32), affine), str(data / "maps" / "mr_sd.nii.gz"))
    shutil.copy(data / "scans" / "mr.nii.gz", data / "scans" / "plain.nii.gz")
    shutil.copy(data / "scans" / "mr.nii.gz", data / "scans" / "estimated.nii.gz")
    datalist = data / "list.json"
    datalist.write_text(
        json.dumps(
            {
                "testing": [
                    {"image": "scans/mr.nii.gz", "noise_sd_map": "maps/mr_sd.nii.gz"},
                    {"image": "scans/plain.nii.gz"},
                    {"image": "scans/estimated.nii.gz", "noise_sd_map": "auto"},
                ]
            }
        )
    )
    items = load_datalist(datalist)
    assert items[0]["noise_sd_map"] == str(data / "maps" / "mr_sd.nii.gz")
    assert datalist_root(items) == str((data / "scans").resolve())

    out = tmp_path / "out"
    run_in_process(datalist_file=str(datalist), output_dir=str(out), model_name="nlm")
    with_map, _ = _written(out / "mr_denoised.nii.gz")
    without, _ = _written(out / "plain_denoised.nii.gz")
    volume = read_volume(data / "scans" / "mr.nii.gz")
    expected = Denoiser("nlm").denoise(volume, NoiseSDMap(read_volume(data / "maps" / "mr_sd.nii.gz")))
    np.testing.assert_array_equal(with_map, expected.array.transpose(2, 1, 0))
    np.testing.assert_array_equal(without, Denoiser("nlm").denoise(volume).array.transpose(2, 1, 0))
    estimated, _ = _written(out / "estimated_denoised.nii.gz")  # "auto": a map read from the image
    expected = Denoiser("nlm").denoise(volume, NoiseSDMap.estimated()).array.transpose(2, 1, 0)
    np.testing.assert_array_equal(estimated, expected)

    def rmse(a):
        return float(np.sqrt(np.mean((a.astype(np.float64) - clean) ** 2)))

    assert rmse(with_map) < 0.9 * rmse(without) < rmse(noisy)

    # a map and a noise level are two levels; the bundle names the item
    with pytest.raises(Exception) as raised:  # MONAI wraps the error of a config expression; the cause is ours
        run_in_process(datalist_file=str(datalist), output_dir=str(tmp_path / "two"), model_name="nlm", noise_sd=20)
    causes = [raised.value]
    while causes[-1].__cause__ is not None or causes[-1].__context__ is not None:
        causes.append(causes[-1].__cause__ or causes[-1].__context__)
    assert any("gives a noise SD map" in str(c) and "a noise level (noise_sd 20)" in str(c) for c in causes)


def test_datalist_files_are_checked_by_name(tmp_path):
    """A missing file, a missing image, a malformed list and a map for a folder of several series are refused naming
    the datalist and the item; a folder of several series without a series UID gives every series."""
    (tmp_path / "a.nii.gz").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    study = tmp_path / "study"
    uids = _study(study)
    listing = tmp_path / "list.json"
    with pytest.raises(FileNotFoundError, match="no such datalist file"):
        load_datalist(tmp_path / "none.json")
    for content, message in (
        ({"training": [{"image": "a.nii.gz"}]}, "under 'testing'"),
        ({"testing": [{"image": "b.nii.gz"}]}, r"item 1's image .*b.nii.gz: no such file"),
        ({"testing": [{"image": "a.nii.gz", "noise_sd_map": "m.nii.gz"}]}, "item 1's noise_sd_map m.nii.gz: no such"),
        ({"testing": [{"label": "a.nii.gz"}]}, "item 1 has no 'image'"),
        ({"testing": [{"image": "study", "noise_sd_map": "a.nii.gz"}]}, "gives 2 volumes .* and one noise SD map"),
        ({"testing": [{"image": "a.nii.gz"}, {"image": "a.nii.gz"}]}, "would both be written"),
        ({"testing": [{"image": "empty"}]}, "item 1's image .*empty is a folder without DICOM images"),
    ):
        listing.write_text(json.dumps(content))
        with pytest.raises((FileNotFoundError, ValueError), match=message):
            load_datalist(listing)
    listing.write_text(json.dumps({"testing": [{"image": "a.nii.gz"}, {"image": "study"}]}))
    assert [item.get("series_uid") for item in load_datalist(listing)] == [None, *uids.values()]
    first = next(iter(uids.values()))
    listing.write_text(json.dumps({"testing": [{"image": "study", "series_uid": first}]}))
    assert load_datalist(listing) == [{"image": str(study), "series_uid": first}]


def test_an_unknown_series_uid_is_refused_by_the_library(tmp_path):
    from meddenoiselib.bundle.readers import LoadVolumed

    study = tmp_path / "study"
    _study(study)
    with pytest.raises(MedDenoiseError, match="no series with UID 1.2.3"):
        LoadVolumed("image")({"image": str(study), "series_uid": "1.2.3"})


def test_an_unevenly_spaced_series_is_written_as_its_evenly_spaced_parts(ct_crop, tmp_path):
    """A tilted head CT of five 2.5 mm slices and four 5 mm ones, which one NIfTI affine cannot place: the datalist
    gives its two evenly spaced parts, and each output equals, voxels and affine, what the CLI's ``--split-uneven``
    writes for that part. Before, the bundle stopped the whole run at this series."""
    from meddenoiselib.cli import main

    from ..cli.tilted_ct import write_tilted_ct

    heights = (0.0, 2.5, 5.0, 7.5, 10.0, 13.0, 18.0, 23.0, 28.0)
    hu = ct_crop.astype(np.float64) * 1400.0 - 1000.0
    clean = np.stack([np.roll(hu, (k, k // 2), axis=(0, 1)) for k in range(len(heights))])
    noisy = clean + np.random.default_rng(5).normal(0.0, 25.0, clean.shape)
    folder = tmp_path / "data" / "head_ct"
    write_tilted_ct(folder, noisy, heights, 15.0, "1.2.3.4.9")
    items = find_dataset(folder.parent)
    assert [(item["series_part"], item["series_name"]) for item in items] == [("0:5", "part1"), ("5:9", "part2")]
    out = tmp_path / "out"
    run_in_process(dataset_dir=str(folder.parent), output_dir=str(out), model_name="median")
    assert sorted(p.name for p in out.glob("*.nii.gz")) == [
        "head_ct_part1_denoised.nii.gz",
        "head_ct_part2_denoised.nii.gz",
    ]
    assert (
        main(["denoise", str(folder), str(tmp_path / "cli.nii.gz"), "--split-uneven", "--model", "median", "-q"]) == 0
    )
    for number, slices in ((1, 5), (2, 4)):
        actual, affine = _written(out / f"head_ct_part{number}_denoised.nii.gz")
        expected, expected_affine = _written(tmp_path / f"cli_part{number}.nii.gz")
        assert actual.shape == (128, 128, slices)
        np.testing.assert_array_equal(actual, expected)
        np.testing.assert_allclose(affine, expected_affine, atol=1e-4)


def test_magnitude_floor_and_coils_reach_the_denoiser(tmp_path, mr_png):
    """``--magnitude_floor remove --coils 1`` with NLM on a brain slice with Rician noise and empty air: the output is
    the library's ``Denoiser("nlm", magnitude_floor="remove", coils=1)``, its air near 0 where NLM alone keeps the
    floor (~1.25 sigma)."""
    from scipy import ndimage

    from meddenoiselib.io import write_volume
    from meddenoiselib.transforms import parse_noise_spec, simulate_volume

    volume = read_volume(mr_png)
    clean = volume.array.astype(np.float32)
    air = ~ndimage.binary_dilation(clean > 0.1 * np.percentile(clean, 99), iterations=3)
    clean[air] = 0
    noisy = simulate_volume(volume.with_array(clean), parse_noise_spec("rician:6%"), seed=1, float_output=True)
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    write_volume(noisy, data / "brain.nii.gz")
    run_in_process(dataset_dir=str(data), output_dir=str(out), model_name="nlm", modality="mr",
                   magnitude_floor="remove", coils=1)  # fmt: skip
    written, _ = _written(out / "brain_denoised.nii.gz")
    source = read_volume(data / "brain.nii.gz")
    expected = Denoiser("nlm", modality="mr", magnitude_floor="remove", coils=1).denoise(source).array
    np.testing.assert_allclose(written.reshape(expected.shape[::-1]), expected.transpose(2, 1, 0), atol=1e-4)
    floor_left = Denoiser("nlm", modality="mr").denoise(source).array
    assert float(np.mean(expected[air])) < 0.2 * float(np.mean(floor_left[air]))


def test_stabilize_reaches_the_denoiser(tmp_path, xray_png):
    """``--stabilize off`` with NLM on a radiograph with photon noise: the output is the library's
    ``Denoiser("nlm", stabilize="off")``, and the default equals ``Denoiser("nlm")`` (under the generalized Anscombe
    transform: the two differ)."""
    import torch

    from meddenoiselib.io import Volume, write_volume
    from meddenoiselib.transforms.noise import samplers

    image = read_volume(xray_png).array[:, 128:384, 128:384].astype(np.float32)
    clean = torch.from_numpy((image - image.min()) / np.ptp(image))
    photons = samplers.poisson_gaussian(clean, 30.0, 1.0, torch.Generator().manual_seed(0)).float().numpy()
    data = tmp_path / "data"
    data.mkdir()
    write_volume(Volume(photons), data / "radiograph.nii.gz")
    source = read_volume(data / "radiograph.nii.gz")
    outputs = {}
    for setting in ("off", "auto"):
        out = tmp_path / setting
        options = {} if setting == "auto" else {"stabilize": setting}
        run_in_process(dataset_dir=str(data), output_dir=str(out), model_name="nlm", **options)
        written, _ = _written(out / "radiograph_denoised.nii.gz")
        expected = Denoiser("nlm", stabilize=setting).denoise(source).array
        np.testing.assert_allclose(written.reshape(expected.shape[::-1]), expected.transpose(2, 1, 0), atol=1e-4)
        outputs[setting] = expected
    assert np.abs(outputs["auto"] - outputs["off"]).max() > 0.01


def test_a_datalist_items_mask_and_excluded_region_reach_the_denoiser(tmp_path):
    """A datalist item's ``mask`` and ``exclude`` (label files on the image's grid, the CLI's ``--mask`` and
    ``--exclude``): the output is the library's ``Denoiser("nlm").denoise(volume, mask=..., exclude=...)``, voxels
    outside the mask and inside the excluded block keep their values exactly; a mask for a folder of several series
    is refused by item."""
    from meddenoiselib.io.segmentation import read_mask_image

    mr = nib.load(str(sample_path("mr_head")))
    crop = mr.slicer[8:50, 8:50, 6:14]
    clean = np.asarray(crop.dataobj).astype(np.float64)
    noisy = np.rint(clean + np.random.default_rng(2).normal(0.0, 30.0, clean.shape)).astype(np.int16)
    mask = np.zeros(clean.shape, np.uint8)
    mask[:30] = 1  # the first 30 columns (x) only
    exclude = np.zeros(clean.shape, np.uint8)
    exclude[10:16, 10:16, 2:5] = 1
    data = tmp_path / "data"
    data.mkdir()
    for name, array in (("mr", noisy), ("mr_mask", mask), ("mr_exclude", exclude)):
        nib.save(nib.Nifti1Image(array, crop.affine), str(data / f"{name}.nii.gz"))
    datalist = data / "list.json"
    datalist.write_text(
        json.dumps({"testing": [{"image": "mr.nii.gz", "mask": "mr_mask.nii.gz", "exclude": "mr_exclude.nii.gz"}]})
    )
    out = tmp_path / "out"
    run_in_process(datalist_file=str(datalist), output_dir=str(out), model_name="nlm")
    written, _ = _written(out / "mr_denoised.nii.gz")
    volume = read_volume(data / "mr.nii.gz")
    expected = Denoiser("nlm").denoise(
        volume, mask=read_mask_image(data / "mr_mask.nii.gz"), exclude=read_mask_image(data / "mr_exclude.nii.gz")
    )
    np.testing.assert_array_equal(written, expected.array.transpose(2, 1, 0))
    kept = (mask == 0) | (exclude == 1)
    np.testing.assert_array_equal(written[kept], noisy[kept])
    assert np.abs(written[~kept].astype(float) - noisy[~kept]).mean() > 5.0  # denoised inside

    study = tmp_path / "study"
    _study(study)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"testing": [{"image": str(study), "mask": str(data / "mr_mask.nii.gz")}]}))
    with pytest.raises(ValueError, match=r"item 1's folder .* gives 2 volumes .* and one mask; name the series"):
        load_datalist(wrong)
