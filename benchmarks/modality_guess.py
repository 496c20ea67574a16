"""What `auto` takes a volume file without a modality tag for, when only its voxels can tell: MR when the air around
the object holds a magnitude-MR noise floor or it is a volume of fine voxels masked to 0 around the object
(``io/modality.py``), else the general model.

    python benchmarks/modality_guess.py --template PATH   # -> docs/benchmarks_modality_guess.md

Three groups, each written as NIfTI without a name or sidecar that would give the modality away and read back with
``read_volume``, then ``detect_modality``:

- **Simulated PET, which must not be MR** (a false MR removes a "floor" from low-activity tissue): the simulator of
  ``scripts/make_pet_phantom.py`` (attenuated parallel-beam projections, Poisson counts with 30 % randoms, MLEM,
  Gaussian post-filter) on two anatomies, each at several count levels, iteration counts and filters, and each as
  the scanner writes it (zero outside the reconstructed circle) and cropped as analyses crop it: an FDG-like chest
  from eight slices of the data folder's chest CT, and, with ``--template``, an FDG-like brain from the MNI T1
  template's tissue classes (grey matter 4, white matter 1.2, CSF 0.3, scalp 0.5).
- **MR, which should be MR**: the two real MR volumes of the data folder whose air is as the scanner wrote it, and,
  with ``--template``, the template (brain only, air exactly 0) with Rician / non-central chi noise at 1-32 coils
  and the reconstructions that change a floor's look: 2x zero-filled interpolation, a smoothing reconstruction
  filter, reslicing of the magnitude image, 5 mm slices averaged from 1 mm ones, and the air masked to 0 (no floor,
  but MR as a volume of fine voxels masked to 0 around the head).
- **Every other volume file of the data folder** without a DICOM Modality tag (NIfTI, NRRD, MHA, ...), by folder.

The MNI ICBM152 2009a T1 template comes with nilearn's wheel (``pip download nilearn --no-deps``, unzip,
``nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz``); it is read from that path, never
copied into the repository.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage
from skimage.transform import resize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from data_split import DATA_ROOT  # noqa: E402
from make_pet_phantom import (  # noqa: E402
    FIXTURE_CROP,
    SIZE,
    activity_from_ct,
    attenuation_from_ct,
    chest_slices,
    save_nifti,
    simulate_pet_slice,
)
from meddenoiselib.errors import MedDenoiseError  # noqa: E402
from meddenoiselib.io import Modality, read_volume  # noqa: E402
from meddenoiselib.io.formats import detect_format  # noqa: E402
from meddenoiselib.io.modality import detect_modality  # noqa: E402
from meddenoiselib.transforms.background import tiles_on_border  # noqa: E402
from meddenoiselib.transforms.magnitude import estimate_magnitude_floor, floor_ratio_for_coils  # noqa: E402

CHEST_SERIES = DATA_ROOT / "ct" / "itkelastix_chest_ct_series00"
#: (true counts per slice, MLEM iterations, post-filter FWHM in pixels)
PET_SETTINGS = ((1e5, 20, 2.5), (3e5, 30, 2.0), (1e6, 50, 0.0), (3e6, 40, 1.0))
BRAIN_PET_SETTINGS = ((2e5, 30, 2.0), (1e6, 40, 0.0))
#: the data folder's MR volumes whose air is as the scanner wrote it (aniso_vox is also the package's sample head)
REAL_MR = ("mr/dipy/aniso_vox.nii.gz", "mr/dipy/S0_10slices.nii.gz")
TEMPLATE_SLICES = slice(60, 84)
#: every third 1 mm slice from the ventricles to the vertex: 20 PET slices 3 mm apart
BRAIN_PET_SLICES = slice(60, 120, 3)
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".mgz", ".mgh", ".mnc")


@dataclass
class Row:
    group: str
    case: str
    expected: str
    guessed: str
    floor: str
    reason: str


def floor_facts(array: np.ndarray) -> str:
    """The floor the voxels show, as the guess judges it: coils, the fit of median / MAD to that coil count, and the
    share of its tiles on the image's edge against the share of all tiles there."""
    floor = estimate_magnitude_floor(array)
    if floor is None:
        return "none"
    edge = tiles_on_border(array.shape, floor.tile)
    fit = floor.ratio / floor_ratio_for_coils(floor.coils)
    return f"{floor.coils} coils, fit {fit:.2f}x, on edge {edge[floor.air].mean():.0%} (all tiles {edge.mean():.0%})"


def judge(path: Path, group: str, case: str, expected: str) -> Row:
    volume = read_volume(path)
    guess = detect_modality(volume)
    return Row(group, case, expected, guess.modality.value, floor_facts(volume.array), guess.reason)


def body_box(volume: np.ndarray, margin: int = 6) -> tuple[slice, slice]:
    """The in-plane box around everything above 2 % of the maximum, ``margin`` pixels wider (air around the body)."""
    rows, cols = np.nonzero(volume.max(axis=0) > 0.02 * volume.max())
    return (
        slice(max(0, rows.min() - margin), rows.max() + margin + 1),
        slice(max(0, cols.min() - margin), cols.max() + margin + 1),
    )


def pet_rows(volume: np.ndarray, name: str, inner: tuple[slice, slice], work: Path, spacing) -> list[Row]:
    """A PET volume as written (zero outside the circle), cropped to its body with air, and cropped inside it."""
    rows = []
    views = {
        "as reconstructed": (slice(None), slice(None)),
        "cropped to the body": body_box(volume),
        "cropped inside": inner,
    }
    for view, (ys, xs) in views.items():
        path = save_nifti(volume[:, ys, xs], work / f"{name}_{len(rows)}.nii.gz", spacing)
        rows.append(judge(path, "simulated PET", f"{name}, {view}", "other"))
    return rows


def chest_pet(work: Path, rng: np.random.Generator) -> list[Row]:
    hu = chest_slices(CHEST_SERIES, 16, 8)  # slices 054-061, through the lungs and the heart
    rows = []
    for counts, iterations, fwhm in PET_SETTINGS:
        volume = np.stack(
            [simulate_pet_slice(activity_from_ct(s), attenuation_from_ct(s), counts, iterations, fwhm, rng) for s in hu]
        )
        name = f"chest {counts:.0e} counts, {iterations} it, filter {fwhm:g} px"
        rows += pet_rows(volume, name, FIXTURE_CROP, work, (2.8, 2.8, 3.0))
    return rows


def template_slices(template: Path, axial: slice = TEMPLATE_SLICES) -> np.ndarray:
    """The template's ``axial`` slices ``(Z, Y, X)`` as float64."""
    data = np.asanyarray(nib.load(str(template)).dataobj).astype(np.float64)
    return np.ascontiguousarray(data.transpose(2, 1, 0)[axial])


def brain_pet(template: Path, work: Path, rng: np.random.Generator) -> list[Row]:
    t1 = template_slices(template, BRAIN_PET_SLICES)
    t1 = t1 / np.percentile(t1, 99)
    rows = []
    for counts, iterations, fwhm in BRAIN_PET_SETTINGS:
        slices = []
        for plane in t1:
            plane = resize(np.pad(plane, ((20, 20), (40, 40))), (SIZE, SIZE), order=1, anti_aliasing=True)
            activity = np.select([plane > 0.75, plane > 0.45, plane > 0.1], [1.2, 4.0, 0.3], 0.0)
            head = ndimage.binary_fill_holes(ndimage.binary_dilation(plane > 0.05, iterations=4))
            activity = np.where(head & (activity == 0), 0.5, activity)
            slices.append(
                simulate_pet_slice(activity, np.where(head, 0.096 * 0.26, 0.0), counts, iterations, fwhm, rng)
            )
        volume = np.stack(slices)
        ys, xs = body_box(volume, margin=0)
        center_y, center_x = (ys.start + ys.stop) // 2, (xs.start + xs.stop) // 2
        inner = (slice(center_y - 25, center_y + 25), slice(center_x - 30, center_x + 30))
        name = f"brain {counts:.0e} counts, {iterations} it, filter {fwhm:g} px"
        rows += pet_rows(volume, name, inner, work, (2.6, 2.6, 3.0))
    return rows


def magnitude(signal: np.ndarray, sigma: float, coils: int, rng: np.random.Generator) -> np.ndarray:
    """Root-sum-of-squares magnitude of ``coils`` complex channels sharing ``signal`` (non-central chi)."""
    channels = [
        (signal / np.sqrt(coils) + rng.normal(0, sigma, signal.shape)) ** 2 + rng.normal(0, sigma, signal.shape) ** 2
        for _ in range(coils)
    ]
    return np.sqrt(sum(channels))


def zero_filled(complex_image: np.ndarray, factor: int = 2) -> np.ndarray:
    """In-plane zero-filled interpolation (k-space padded ``factor`` times), as scanners interpolate to 512 pixels."""
    spectrum = np.fft.fftshift(np.fft.fft2(complex_image), axes=(-2, -1))
    rows, cols = complex_image.shape[-2:]
    padded = np.zeros(complex_image.shape[:-2] + (factor * rows, factor * cols), complex)
    top, left = (factor - 1) * rows // 2, (factor - 1) * cols // 2
    padded[..., top : top + rows, left : left + cols] = spectrum
    return np.fft.ifft2(np.fft.ifftshift(padded, axes=(-2, -1))) * factor**2


def template_mr(template: Path, work: Path, rng: np.random.Generator) -> list[Row]:
    clean = template_slices(template)
    sigma = 0.03 * float(np.percentile(clean, 99))
    cases = {f"template, {n} coil{'s' if n > 1 else ''}": magnitude(clean, sigma, n, rng) for n in (1, 2, 4, 8, 16, 32)}
    noisy = clean + rng.normal(0, sigma, clean.shape) + 1j * rng.normal(0, sigma, clean.shape)
    cases["template, 1 coil, zero-filled to 2x"] = np.abs(zero_filled(noisy))
    smoothed = ndimage.gaussian_filter(noisy.real, (0, 0.6, 0.6)) + 1j * ndimage.gaussian_filter(
        noisy.imag, (0, 0.6, 0.6)
    )
    cases["template, 1 coil, smoothing reconstruction filter"] = np.abs(smoothed)
    cases["template, 1 coil, magnitude resliced x1.37"] = ndimage.zoom(np.abs(noisy), (1, 1.37, 1.37), order=1)
    cases["template, 1 coil, 5 mm slices (5 averaged)"] = np.abs(noisy)[:20].reshape(4, 5, *clean.shape[1:]).mean(1)
    cases["template, 1 coil, air masked to 0"] = np.where(
        ndimage.binary_dilation(clean > 0, iterations=3), np.abs(noisy), 0
    )
    rows = []
    for index, (case, volume) in enumerate(cases.items()):
        expected = "mr"
        path = save_nifti(volume, work / f"mr_{index}.nii.gz", (1.0, 1.0, 5.0 if "5 mm" in case else 1.0))
        rows.append(judge(path, "MR", case, expected))
    return rows


def real_mr() -> list[Row]:
    return [judge(DATA_ROOT / name, "MR", f"real: {name}", "mr") for name in REAL_MR]


def data_folder() -> list[Row]:
    """Every readable 3D volume file of the data folder without a DICOM Modality tag, except the real MR above."""
    rows = []
    for path in sorted(DATA_ROOT.rglob("*")):
        relative = path.relative_to(DATA_ROOT).as_posix()
        if not path.name.lower().endswith(VOLUME_SUFFIXES) or relative in REAL_MR or detect_format(path) is None:
            continue
        try:
            volume = read_volume(path)
        except MedDenoiseError:  # 4D files and the like: the CLI reads them as series
            continue
        if volume.metadata.get("0008|0060"):
            continue
        guess = detect_modality(volume)
        folder = relative.split("/")[0]
        rows.append(Row("data folder", relative, folder, guess.modality.value, floor_facts(volume.array), guess.reason))
    return rows


def merge_draws(rows: list[Row]) -> list[Row]:
    """One row per case of several noise draws: the guess if every draw gave it, else how many draws gave MR; the
    floor of a draw that read as MR, else of the first draw that showed one."""
    merged = {}
    for case in dict.fromkeys(row.case for row in rows):
        draws = [row for row in rows if row.case == case]
        guesses = [row.guessed for row in draws]
        guessed = guesses[0] if len(set(guesses)) == 1 else f"mr in {guesses.count('mr')} of {len(draws)} draws"
        shown = [row for row in draws if row.guessed == "mr"] or [row for row in draws if row.floor != "none"] or draws
        merged[case] = Row(draws[0].group, case, draws[0].expected, guessed, shown[0].floor, shown[0].reason)
    return list(merged.values())


def markdown(rows: list[Row], command: str, draws: int) -> str:
    lines = [
        "# What `auto` takes a volume file without a modality tag for",
        "",
        f"Generated by `{command}` (`benchmarks/modality_guess.py`; its docstring gives every case). A volume file",
        "(NIfTI, NRRD, MHA, MGZ, MINC, DICOM) without a tag, sidecar, BIDS name or `--modality` is MR when the air",
        "around the object holds a magnitude-MR noise floor: the background's median / MAD fits a coil count (within",
        "1.3x), is not below one coil's by more than 1.15x, and its tiles lie on the image's edge at least as often as",
        "tiles do at all; or when it is a volume of pixels up to 1.5 mm, never negative, masked to 0 around the",
        "object (whole 4x4-pixel patches at 0, on at least 99 % of the slices' edge pixels), as skull-stripping leaves",
        "an MR (`io/modality.py`).",
        "`floor` is what the voxels show: the coil count it fits, how closely, and the share of its tiles on the edge.",
        f"Each simulated PET case is {draws} draws of its Poisson counts (seeds `--seed` onwards).",
        "",
    ]
    for group in dict.fromkeys(row.group for row in rows):
        members = [row for row in rows if row.group == group]
        wrong = [row for row in members if group != "data folder" and row.guessed != row.expected]
        mr = [row for row in members if row.guessed == Modality.MR.value]
        summary = f"{len(wrong)} of {len(members)} not as expected" if group != "data folder" else f"{len(mr)} MR"
        header = "folder" if group == "data folder" else "expected"
        lines += [f"## {group} ({summary})", "", f"| case | {header} | guessed | floor |", "|---|---|---|---|"]
        for row in members:
            mark = "" if group == "data folder" or row.guessed == row.expected else " **(wrong)**"
            lines.append(f"| {row.case} | {row.expected} | {row.guessed}{mark} | {row.floor} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, help="the MNI ICBM152 2009a T1 template (nilearn's wheel)")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks_modality_guess.md")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--draws", type=int, default=3, help="noise draws of each simulated PET")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        pet = []
        for draw in range(args.draws):
            rng = np.random.default_rng(args.seed + draw)
            pet += chest_pet(work, rng)
            if args.template:
                pet += brain_pet(args.template, work, rng)
        rows = merge_draws(pet) + real_mr()
        if args.template:
            rows += template_mr(args.template, work, np.random.default_rng(args.seed))
        rows += data_folder()
    command = "python benchmarks/modality_guess.py" + (" --template PATH" if args.template else "")
    text = markdown(rows, command, args.draws)
    args.output.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
