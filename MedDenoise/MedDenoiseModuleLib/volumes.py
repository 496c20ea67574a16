"""Volume node <-> ``meddenoiselib.io.Volume``: the one place where array axis order and IJK->RAS are handled.

A scalar volume node stores voxels as a VTK image whose numpy view is indexed ``[k, j, i]`` (``[k, j, i, c]`` for
a vector volume such as colour ultrasound) and its geometry as an IJK->RAS matrix; ``Volume`` uses the same order
(components last, denoised one by one by the library) and converts IJK->RAS to spacing, LPS origin and direction
(``Volume.from_ijk_to_ras`` / ``Volume.ijk_to_ras``). The node's own matrix ignores a parent transform, so the
world matrix is used instead: a linear, non-shearing parent transform is applied to the geometry (what hardening
it would do, without touching the input node). A scalar or vector volume under a non-linear transform is denoised
on its own grid and its results put under the same transform (:func:`grid_of_node`): that is how Slicer's DICOM
module loads a CT taken on a tilted gantry or with uneven slice steps (its "Acquisition transform"), and hardening
would resample the voxels, and their noise, before denoising. Other nodes under a non-linear transform are refused.

Only MRML classes and ``slicer.util`` array helpers are used, which the ``slicer-core`` package also provides.
"""

from __future__ import annotations

import numpy as np
import vtk

import slicer

__all__ = [
    "INPUT_NODE_TYPES",
    "check_input_node",
    "copy_display_settings",
    "dicom_modality",
    "file_modality",
    "first_input_candidate",
    "grid_of_node",
    "output_node_name",
    "place_next_to",
    "read_volume_file",
    "resampling_sign_of_node",
    "update_node_from_volume",
    "volume_from_node",
    "world_ijk_to_ras",
    "write_volume_file",
]

#: the node classes the module denoises, matched exactly (as the input selector does with showChildNodeTypes off):
#: label maps and tensor volumes are subclasses of the scalar volume class but are refused; a diffusion-weighted
#: volume is denoised gradient by gradient as MR (``diffusion.py``).
INPUT_NODE_TYPES = (
    "vtkMRMLScalarVolumeNode",
    "vtkMRMLVectorVolumeNode",
    "vtkMRMLDiffusionWeightedVolumeNode",
    "vtkMRMLMultiVolumeNode",
)

_REFUSED = {
    "vtkMRMLLabelMapVolumeNode": "is a label map: its voxels are label values, and denoising would change them. "
    "Select an image volume; to denoise only a region, use the label map as the mask instead.",
    "vtkMRMLDiffusionTensorVolumeNode": "is a tensor volume; only image volumes can be denoised.",
}

_ORTHOGONALITY_TOLERANCE = 1e-6


def _matrix(getter) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    getter(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def world_ijk_to_ras(node) -> np.ndarray:
    """The ``4 x 4`` matrix mapping ``(i, j, k, 1)`` of ``node`` to world RAS millimetres.

    Raises:
        ValueError: the node is under a non-linear transform, or a linear one that shears or mirrors the voxel
            grid unevenly (neither can be represented without resampling).
    """
    ijk_to_ras = _matrix(node.GetIJKToRASMatrix)
    transform = node.GetParentTransformNode()
    if transform is None:
        return ijk_to_ras
    name = node.GetName()
    if not transform.IsTransformToWorldLinear():
        raise ValueError(
            f"'{name}' is under the non-linear transform '{transform.GetName()}'. Harden the transform on the "
            "volume first (Transforms module, which resamples it), then denoise."
        )
    world = _matrix(transform.GetMatrixTransformToWorld) @ ijk_to_ras
    axes = world[:3, :3] / np.linalg.norm(world[:3, :3], axis=0)
    if np.abs(axes.T @ axes - np.eye(3)).max() > _ORTHOGONALITY_TOLERANCE:
        raise ValueError(
            f"'{name}' is under the transform '{transform.GetName()}', which shears its voxel grid. Harden the "
            "transform on the volume first (Transforms module), then denoise."
        )
    return world


#: node classes denoised on their own grid under a non-linear parent transform (the results go under it too)
_OWN_GRID_UNDER_WARP = ("vtkMRMLScalarVolumeNode", "vtkMRMLVectorVolumeNode")


def grid_of_node(node) -> tuple[np.ndarray, str | None]:
    """``(ijk_to_ras, transform_id)``: the grid ``node``'s voxels are denoised on, and the transform node its results
    go under.

    Without a parent transform, or under a linear one, the world matrix (:func:`world_ijk_to_ras`) and None: the
    results are created hardened. A scalar or vector volume under a non-linear transform (Slicer's DICOM module puts
    a CT taken on a tilted gantry, or with uneven slice steps, under its "Acquisition transform"; a registration's
    warp) gives its own IJK->RAS matrix and that transform's ID: its voxels are denoised as they were acquired,
    and the results displayed through the same transform, exactly where the input is, nothing resampled.

    Raises:
        ValueError: as :func:`world_ijk_to_ras`, for other nodes under a non-linear transform and for shearing
            linear transforms.
    """
    transform = node.GetParentTransformNode()
    if transform is not None and not transform.IsTransformToWorldLinear():
        if node.GetClassName() in _OWN_GRID_UNDER_WARP:
            return _matrix(node.GetIJKToRASMatrix), transform.GetID()
    return world_ijk_to_ras(node), None


def check_input_node(node) -> None:
    """Raise ValueError with a user-readable message if ``node`` cannot be denoised."""
    if node is None:
        raise ValueError("No input volume selected.")
    class_name = node.GetClassName()
    if class_name in _REFUSED:
        raise ValueError(f"'{node.GetName()}' {_REFUSED[class_name]}")
    if class_name not in INPUT_NODE_TYPES:
        raise ValueError(
            f"'{node.GetName()}' is a {class_name}; MedDenoise denoises scalar, vector (colour), "
            "diffusion-weighted and multi-volume volumes only."
        )
    image = node.GetImageData()
    if image is None or image.GetPointData() is None or image.GetPointData().GetScalars() is None:
        raise ValueError(f"'{node.GetName()}' has no voxels.")
    if 0 in image.GetDimensions():
        raise ValueError(f"'{node.GetName()}' is empty (dimensions {image.GetDimensions()}).")
    components = image.GetNumberOfScalarComponents()
    if class_name == "vtkMRMLScalarVolumeNode" and components != 1:
        raise ValueError(
            f"'{node.GetName()}' is a scalar volume with {components} components; load it as a "
            "vector volume to denoise each component."
        )
    grid_of_node(node)
    if class_name == "vtkMRMLDiffusionWeightedVolumeNode":
        from .diffusion import check_diffusion_transform

        check_diffusion_transform(node)


def first_input_candidate(scene, node_types=INPUT_NODE_TYPES):
    """The first node in ``scene`` the input selector would offer: class exactly one of ``node_types`` (child classes
    such as label maps are not offered) and not hidden from editors. None when there is none."""
    if scene is None:
        return None
    for index in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(index)
        if node.GetClassName() in node_types and not node.GetHideFromEditors():
            return node
    return None


def dicom_modality(node) -> str | None:
    """The DICOM Modality (``"CT"``, ``"MR"``, ...) Slicer's DICOM module stored for ``node``'s series, else None.

    Looks at the node's subject hierarchy item and its parents (attribute ``DICOM.Modality``).
    """
    scene = node.GetScene() if node is not None else None
    # look the hierarchy up without creating one (GetSubjectHierarchyNode would add it to a scene that has none)
    hierarchy = scene.GetFirstNodeByClass("vtkMRMLSubjectHierarchyNode") if scene is not None else None
    if hierarchy is None:
        return None
    attribute = slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMSeriesModalityAttributeName()
    item, invalid = hierarchy.GetItemByDataNode(node), hierarchy.GetInvalidItemID()
    while item not in (invalid, hierarchy.GetSceneItemID()):
        value = hierarchy.GetItemAttribute(item, attribute)
        if value:
            return value
        item = hierarchy.GetItemParent(item)
    return None


def file_modality(node) -> tuple[str, str] | None:
    """``(modality, reason)`` from the file ``node`` was loaded from, without its voxels: a DICOM file's Modality tag,
    a MetaImage header's Modality, a NIfTI's BIDS / dcm2niix sidecar or BIDS name, a PAR/REC or an MGZ
    (``meddenoiselib.io.modality_from_file``); else None.

    The library reads these from the file it is given, but the module gives it a NRRD of the node, without them: a
    PET NIfTI with its sidecar (Modality PT), or a CT or MR DICOM file loaded with *Add Data* rather than the DICOM
    module, would otherwise be judged by its voxels alone.
    """
    try:
        from meddenoiselib.io.modality import modality_from_file
    except ImportError:  # a library older than this module: the choice from the voxels alone, as before
        return None
    storage = node.GetStorageNode() if node is not None and hasattr(node, "GetStorageNode") else None
    file_name = storage.GetFileName() if storage is not None else None
    guess = modality_from_file(file_name) if file_name else None
    return None if guess is None else (guess.modality.value, guess.reason)


#: the node attribute in which Slicer's DICOM module lists the SOP Instance UIDs a volume was loaded from
DICOM_INSTANCE_UIDS = "DICOM.instanceUIDs"


def resampling_sign_of_node(node) -> str:
    """Why the header ``node`` was loaded from says it was resampled (``meddenoiselib.io.provenance``), or ``""``.

    A node carries no header of its own, so this looks where Slicer keeps it: for a volume loaded by the DICOM
    module, the ImageType of its first instance in the application's DICOM database (``slicer.dicomDatabase``,
    absent outside the application); otherwise the header of the file its storage node reads (NIfTI, DICOM).
    """
    try:
        from meddenoiselib.io.provenance import header_resampling_sign, image_type_sign
    except ImportError:  # a library older than this module: no advice rather than no denoising
        return ""

    uids = (node.GetAttribute(DICOM_INSTANCE_UIDS) or "").split()
    database = getattr(slicer, "dicomDatabase", None)
    if uids and database is not None:
        try:
            image_type = database.instanceValue(uids[0], "0008,0008")
        except Exception:  # noqa: BLE001 - a database that cannot answer gives no advice
            image_type = ""
        sign = image_type_sign(image_type)
        if sign:
            return sign
    storage = node.GetStorageNode() if hasattr(node, "GetStorageNode") else None
    file_name = storage.GetFileName() if storage is not None else None
    return header_resampling_sign(file_name) if file_name else ""


def volume_from_node(node):
    """A ``meddenoiselib.io.Volume`` holding a copy of the node's voxels and its world geometry (under a non-linear
    transform, its own: :func:`grid_of_node`).

    Raises:
        ValueError: see :func:`check_input_node`.
    """
    from meddenoiselib.io.volume import SourceInfo, Volume

    check_input_node(node)
    array = np.array(slicer.util.arrayFromVolume(node), copy=True)  # (k, j, i[, c]), detached from VTK memory
    return Volume.from_ijk_to_ras(array, grid_of_node(node)[0], source=SourceInfo(path="", format="memory"))


def slice_index_in_view(node, slice_to_ras: np.ndarray, chosen_axis: int | None = None) -> tuple[int, bool]:
    """Which slice of ``node`` a slice view shows, counted along the axis the library denoises it (``chosen_axis``,
    else the largest spacing, as ``meddenoiselib.inference.slice_axis`` picks it): what a preview of that view
    computes.

    Args:
        node: the input volume node (its world geometry, or under a non-linear transform its own, the view's centre
            and normal taken back through the transform; the voxels are not copied).
        slice_to_ras: the slice node's ``SliceToRAS`` matrix (4x4; column 2 the view's normal, column 3 its centre).
        chosen_axis: the module's slice axis (array axis 0, 1, 2), or None.

    Returns:
        ``(index, across)``: the slice holding the view's centre, and whether the view cuts across that axis (else
        the view shows another orientation, and the previewed slice edge-on).

    Raises:
        ValueError: the view's centre lies outside the volume along that axis.
    """
    from meddenoiselib.inference import slice_axis
    from meddenoiselib.io.volume import Volume

    ijk_to_ras, warped = grid_of_node(node)
    shape = tuple(int(n) for n in reversed(node.GetImageData().GetDimensions()))  # (k, j, i)
    geometry = Volume.from_ijk_to_ras(np.broadcast_to(np.zeros((), np.uint8), shape), ijk_to_ras)
    axis = slice_axis(geometry, chosen_axis)
    matrix = np.asarray(slice_to_ras, dtype=np.float64)
    centre, normal = matrix[:3, 3], matrix[:3, 2] / np.linalg.norm(matrix[:3, 2])
    if warped is not None:
        centre, normal = _view_in_node_space(node, matrix)
    ijk = np.linalg.inv(ijk_to_ras) @ np.append(centre, 1.0)
    index = int(np.floor(ijk[2 - axis] + 0.5))  # array axis a is index axis (i, j, k)[2 - a]
    count = shape[axis]
    if not 0 <= index < count:
        raise ValueError(
            f"the slice view's position lies outside '{node.GetName()}' ({count} slices along its slice axis); move "
            "the view onto the volume to preview"
        )
    along = ijk_to_ras[:3, 2 - axis] / np.linalg.norm(ijk_to_ras[:3, 2 - axis])
    return index, bool(abs(normal @ along) > 0.99)


def _view_in_node_space(node, slice_to_ras: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A slice view's centre and unit normal in ``node``'s own RAS, taken back through its (non-linear) parent
    transform: the centre as a point, the normal as that of the view's plane (its two in-plane axes taken back,
    which a shear keeps in the plane where it would tilt a normal)."""
    from_world = vtk.vtkGeneralTransform()
    node.GetParentTransformNode().GetTransformFromWorld(from_world)

    def back(point: np.ndarray) -> np.ndarray:
        return np.array(from_world.TransformPoint(*map(float, point)))

    centre = slice_to_ras[:3, 3]
    local = back(centre)
    axes = [back(centre + slice_to_ras[:3, m] / np.linalg.norm(slice_to_ras[:3, m])) - local for m in (0, 1)]
    normal = np.cross(axes[0], axes[1])
    return local, normal / max(float(np.linalg.norm(normal)), 1e-12)


def update_node_from_volume(node, volume, ijk_to_ras: np.ndarray | None = None) -> None:
    """Put a volume's voxels into ``node`` with its geometry (or ``ijk_to_ras``), as one MRML modification.

    The node is taken out from under any parent transform: the geometry written is already the world geometry.
    """
    matrix = volume.ijk_to_ras() if ijk_to_ras is None else np.asarray(ijk_to_ras, dtype=np.float64)
    array = np.ascontiguousarray(volume.array)
    was_modifying = node.StartModify()
    try:
        node.SetAndObserveTransformNodeID(None)
        node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(matrix))
        slicer.util.updateVolumeFromArray(node, array)
    finally:
        node.EndModify(was_modifying)


def write_volume_file(volume, path) -> None:
    """Write the volume handed to the child process (NRRD, LPS geometry, the voxels' own dtype)."""
    from meddenoiselib.io import write_volume

    write_volume(volume, path, overwrite=True, compress=False)  # a hand-over file: speed over size


def read_volume_file(path):
    """Read the child process's result back into a ``Volume``."""
    from meddenoiselib.io import read_volume

    return read_volume(path)


def output_node_name(scene, input_node, what: str = "denoised") -> str:
    """``"<input name> denoised"`` (or another ``what``: ``"preview"``), made unique in the scene."""
    return scene.GenerateUniqueName(f"{input_node.GetName()} {what}")


def copy_display_settings(source, target) -> None:
    """Give ``target`` a display node with ``source``'s colour map and window/level (for a fair comparison)."""
    shown = source.GetDisplayNode()
    if target.GetDisplayNode() is None and shown is not None and hasattr(shown, "GetFrameComponent"):
        # a multi-volume's display node picks the frame shown; the default display node would not
        display = target.GetScene().AddNewNodeByClass(shown.GetClassName())
        display.SetFrameComponent(shown.GetFrameComponent())
        target.SetAndObserveDisplayNodeID(display.GetID())
    if target.GetDisplayNode() is None:
        target.CreateDefaultDisplayNodes()
    source_display, target_display = source.GetDisplayNode(), target.GetDisplayNode()
    if source_display is None or target_display is None:
        return
    if source_display.GetColorNodeID():
        target_display.SetAndObserveColorNodeID(source_display.GetColorNodeID())
    target_display.SetAutoWindowLevel(False)
    target_display.SetWindowLevel(source_display.GetWindow(), source_display.GetLevel())
    if hasattr(source_display, "GetDiffusionComponent") and hasattr(target_display, "SetDiffusionComponent"):
        target_display.SetDiffusionComponent(source_display.GetDiffusionComponent())  # the same gradient shown


def place_next_to(source, target) -> None:
    """Put ``target`` beside ``source`` in the subject hierarchy (same study/folder), when both have items."""
    scene = source.GetScene()
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene) if scene is not None else None
    if hierarchy is None:
        return
    invalid = hierarchy.GetInvalidItemID()
    source_item, target_item = hierarchy.GetItemByDataNode(source), hierarchy.GetItemByDataNode(target)
    if invalid in (source_item, target_item):
        return
    parent = hierarchy.GetItemParent(source_item)
    if parent != invalid:
        hierarchy.SetItemParent(target_item, parent)
