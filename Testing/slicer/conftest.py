"""Fixtures for the Slicer module tests: real MRML from the ``slicer-core`` package, the module folder on sys.path.

Slicer itself cannot be installed on the machines these tests run on. What runs here for real: MRML scenes,
volume/storage/transform nodes and ``slicer.util`` array helpers (slicer-core), the library, and the CLI child
process. Only the GUI wiring tests use stand-ins (see ``fakes.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core package (real MRML without the app) is needed")

REPO = Path(__file__).resolve().parents[2]
MODULE_DIR = REPO / "MedDenoise"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))


def oblique_ijk_to_ras(spacing=(0.7, 1.3, 2.5), origin=(10.5, -3.25, 7.0), angles_deg=(20.0, -35.0, 50.0)):
    """A non-axis-aligned, anisotropic IJK->RAS matrix (rotation about x, y, z, then spacing)."""
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    matrix = np.eye(4)
    matrix[:3, :3] = rz @ ry @ rx @ np.diag(spacing)
    matrix[:3, 3] = origin
    return matrix


def node_matrix(node) -> np.ndarray:
    """The node's own IJK->RAS matrix as numpy."""
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def add_volume_node(scene, array, ijk_to_ras, name="input"):
    """A real scalar volume node in ``scene`` with these voxels (k, j, i) and this geometry."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    slicer.util.updateVolumeFromArray(node, array)
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijk_to_ras))
    node.CreateDefaultDisplayNodes()
    return node


@pytest.fixture(scope="session")
def segmentation_converters():
    """What Slicer's Segmentations module registers at startup (binary labelmap <-> closed surface rules): needed
    to export segmentations onto a volume's grid."""
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    for rule in (
        slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule,
        slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule,
    ):
        factory.RegisterConverterRule(rule())


@pytest.fixture()
def scene():
    """A real, empty MRML scene."""
    return slicer.vtkMRMLScene()


@pytest.fixture()
def temp_root(tmp_path) -> Path:
    """The folder tasks make their temporary folders in (checked empty afterwards)."""
    root = tmp_path / "temp-root"
    root.mkdir()
    return root
