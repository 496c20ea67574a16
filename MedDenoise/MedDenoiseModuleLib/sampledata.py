"""The bundled 4-slice chest CT (DICOM) as a Sample Data entry, so a new user can try the module in one click.

The files are not downloaded: they ship with the library sources beside the module (or in the checkout), and
Sample Data copies them from ``file://`` URIs into its cache, verifies their SHA-256 and loads the series with
Slicer's volume reader (the archetype reader reads all four slices from one file). The click handler then marks
the volume's DICOM Modality as CT, so model ``auto`` knows what it is.
"""

from __future__ import annotations

from pathlib import Path

import slicer

from .dependencies import find_library_source

__all__ = ["CHEST_CT_FILES", "SAMPLE_CATEGORY", "SAMPLE_NAME", "chest_ct_folder", "register_chest_ct"]

SAMPLE_CATEGORY = "MedDenoise"
SAMPLE_NAME = "MedDenoiseChestCT"
#: the files of the sample (thorax CT slices 098-101, see samples/README.md) and their SHA-256.
CHEST_CT_FILES = (
    ("00-slice098.dcm", "f53c6ed594e42093d3d795c4e189fbfa75490634bed35f6a20f3cd0dd5ee6032"),
    ("00-slice099.dcm", "5036588825a88953e287d87901095d0ddcba184cd5e6cfd890a98c02d6086775"),
    ("00-slice100.dcm", "5ec430a3c015b8a333eadaffa707f1d67dc96eac6b36f248b49068e33af0b9e9"),
    ("00-slice101.dcm", "989f394399702b9cfb2de9f5ddaf7cdc813c4fb7268fcc595f0ba4797bab0ef8"),
)
_SAMPLES = Path("MedDenoiseLib") / "meddenoiselib" / "samples" / "ct_chest"


def chest_ct_folder(module_dir: str | Path) -> Path | None:
    """The folder holding the sample's DICOM files: in the bundled library sources or the checkout, else in the
    installed library; None when none has all four files."""
    candidates = []
    source = find_library_source(module_dir)
    if source is not None:
        candidates.append(source / _SAMPLES)
    try:
        from meddenoiselib.demo import sample_path

        candidates.append(Path(sample_path("ct_chest")))
    except Exception:  # noqa: BLE001 - not installed yet: the bundled sources are enough
        pass
    for folder in candidates:
        if all((folder / name).is_file() for name, _ in CHEST_CT_FILES):
            return folder
    return None


def mark_modality(node, modality: str = "CT") -> None:
    """Store a DICOM Modality on the node's subject hierarchy item, as Slicer's DICOM module does."""
    scene = node.GetScene()
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    item = hierarchy.GetItemByDataNode(node)
    if item == hierarchy.GetInvalidItemID():  # Slicer's subject hierarchy logic normally made it already
        item = hierarchy.CreateItem(hierarchy.GetSceneItemID(), node)
    hierarchy.SetItemAttribute(
        item, slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMSeriesModalityAttributeName(), modality
    )


def register_chest_ct(sample_data, module_dir: str | Path, thumbnail: str | Path | None = None) -> bool:
    """Register the sample with the Sample Data module (``sample_data`` is the imported ``SampleData`` module).

    Returns:
        False when the sample files were not found (nothing registered).
    """
    folder = chest_ct_folder(module_dir)
    if folder is None:
        return False
    logic_class = sample_data.SampleDataLogic

    def load_and_mark(source):
        nodes = logic_class().downloadFromSource(source)
        for node in nodes:
            if hasattr(node, "IsA") and node.IsA("vtkMRMLVolumeNode"):
                mark_modality(node)
        return nodes

    count = len(CHEST_CT_FILES)
    logic_class.registerCustomSampleDataSource(
        category=SAMPLE_CATEGORY,
        sampleName=SAMPLE_NAME,
        uris=[(folder / name).resolve().as_uri() for name, _ in CHEST_CT_FILES],
        fileNames=[f"{SAMPLE_NAME}-{name}" for name, _ in CHEST_CT_FILES],
        nodeNames=[None] * (count - 1) + [SAMPLE_NAME],  # the last file is loaded; the reader takes all four
        checksums=[f"SHA256:{digest}" for _, digest in CHEST_CT_FILES],
        thumbnailFileName=str(thumbnail) if thumbnail else None,
        loadFileType="VolumeFile",
        customDownloader=load_and_mark,
    )
    return True
