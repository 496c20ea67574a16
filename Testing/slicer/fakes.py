"""The smallest stand-ins for the Slicer GUI modules that ``slicer-core`` lacks (tier C: wiring only).

``slicer-core`` provides real MRML (scenes, volume nodes, storage nodes, transforms) and ``slicer.util``'s array
helpers, but not the application: no ``qt``, no ``slicer.ScriptedLoadableModule``, no
``slicer.parameterNodeWrapper``, no ``slicer.i18n``, no ``slicer.mrmlScene``. To import ``MedDenoise.py`` these
are injected into ``sys.modules`` by :func:`slicer_gui_fakes` and removed again afterwards. What each fake does:

- ``qt``: only ``QTimer`` (:class:`FakeTimer`; a test fires ``timeout()`` by hand, there is no event loop, so a
  single-shot timer does nothing until fired).
- ``slicer.i18n``: ``tr``/``translate`` return the text unchanged.
- ``slicer.ScriptedLoadableModule``: the four base classes; ``getParameterNode`` returns a *real*
  ``vtkMRMLScriptedModuleNode``, a singleton in the (real) scene; the test base class is ``unittest.TestCase``
  with a no-op ``delayDisplay``.
- ``slicer.parameterNodeWrapper``: ``parameterNodeWrapper`` turns the class into a holder of Python values with
  the declared defaults that calls ``Modified()`` on the real scripted module node when a value changes (so
  observers fire as with the real wrapper) and delegates ``AddObserver``/``RemoveObserver`` to it;
  ``connectGui``/``disconnectGui`` only record the call. Values are NOT serialised into the node: scene
  persistence is not tested here. ``WithinRange`` only stores its bounds.
- ``slicer.mrmlScene``: a real, empty ``vtkMRMLScene``.
- ``slicer.util.errorDisplay``: records the message instead of opening a dialog.
- ``slicer.util.confirmOkCancelDisplay``: answers what the test set in ``fakes.answers`` (True by default) and
  records the question.

Nothing about geometry, voxels or files goes through these fakes.
"""

from __future__ import annotations

import contextlib
import sys
import types
import typing
import unittest

import slicer

__all__ = [
    "FakeButton",
    "FakeComboBox",
    "FakeTableView",
    "FakeTextEdit",
    "FakeTimer",
    "FakeWidget",
    "fake_ui",
    "slicer_gui_fakes",
]


# --------------------------------------------------------------------------------------------------- qt
class FakeTimer:
    """``qt.QTimer``: ``setInterval``, ``connect("timeout()", slot)``, ``start``, ``stop``; ``fire()`` for tests."""

    def __init__(self) -> None:
        self.interval = 0
        self.active = False
        self.single_shot = False
        self.slots = []

    def setInterval(self, milliseconds) -> None:  # noqa: N802 - Qt's name
        self.interval = milliseconds

    def setSingleShot(self, single) -> None:  # noqa: N802 - Qt's name
        self.single_shot = bool(single)

    def connect(self, signal, slot) -> None:
        assert signal == "timeout()"
        self.slots.append(slot)

    def start(self) -> None:
        self.active = True

    def stop(self) -> None:
        self.active = False

    def fire(self) -> None:
        if self.single_shot:
            self.active = False
        for slot in self.slots:
            slot()


class FakeWidget:
    """A widget whose Qt properties are plain attributes (PythonQt exposes them the same way)."""

    def __init__(self, **properties) -> None:
        self.enabled = True
        self.toolTip = ""
        self.signals: dict[str, list] = {}
        self.__dict__.update(properties)

    def connect(self, signal, slot) -> None:
        self.signals.setdefault(signal, []).append(slot)

    def emit(self, signal, *args) -> None:
        for slot in self.signals.get(signal, []):
            slot(*args)


class FakeButton(FakeWidget):
    """``QPushButton``: ``click()`` emits ``clicked(bool)`` when enabled, like a user click."""

    def click(self) -> None:
        if self.enabled:
            self.emit("clicked(bool)", False)


class FakeComboBox(FakeWidget):
    """``QComboBox`` with text items; setting ``currentIndex`` emits ``currentIndexChanged(int)`` as Qt does."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list[str] = []
        self._index = -1

    def clear(self) -> None:
        self.items = []
        self.currentIndex = -1

    def addItem(self, text) -> None:  # noqa: N802
        self.items.append(str(text))
        if self._index < 0:
            self.currentIndex = 0

    def findText(self, text) -> int:  # noqa: N802
        return self.items.index(text) if text in self.items else -1

    @property
    def count(self) -> int:
        return len(self.items)

    @property
    def currentIndex(self) -> int:  # noqa: N802
        return self._index

    @currentIndex.setter
    def currentIndex(self, index) -> None:  # noqa: N802
        if index != self._index:
            self._index = index
            self.emit("currentIndexChanged(int)", index)

    @property
    def currentText(self) -> str:  # noqa: N802
        return self.items[self._index] if 0 <= self._index < len(self.items) else ""


class FakePathLineEdit(FakeWidget):
    """``ctkPathLineEdit``: setting ``currentPath`` emits ``currentPathChanged(QString)`` when it changes (as CTK)."""

    def __init__(self) -> None:
        super().__init__()
        self._path = ""

    @property
    def currentPath(self) -> str:  # noqa: N802
        return self._path

    @currentPath.setter
    def currentPath(self, path) -> None:  # noqa: N802
        if str(path) != self._path:
            self._path = str(path)
            self.emit("currentPathChanged(QString)", self._path)


class FakeTextEdit(FakeWidget):
    """``QPlainTextEdit``: ``appendPlainText`` collects the lines."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def appendPlainText(self, text) -> None:  # noqa: N802
        self.lines.append(str(text))


class FakeTableView(FakeWidget):
    """``qMRMLTableView``: remembers the table node it shows."""

    def __init__(self) -> None:
        super().__init__()
        self.table = None

    def setMRMLTableNode(self, node) -> None:  # noqa: N802
        self.table = node


def fake_ui() -> types.SimpleNamespace:
    """The widgets ``MedDenoiseWidget`` reads and writes besides those bound by ``connectGui``."""
    return types.SimpleNamespace(
        applyButton=FakeButton(enabled=False),
        previewButton=FakeButton(enabled=False),
        cancelButton=FakeButton(enabled=False),
        modelComboBox=FakeComboBox(),
        weightsPathLineEdit=FakePathLineEdit(),
        noiseLevelSpinBox=FakeWidget(),
        noiseLevelUnitsComboBox=FakeWidget(),
        windowCenterSpinBox=FakeWidget(),
        windowWidthSpinBox=FakeWidget(),
        wholeSequenceCheckBox=FakeWidget(),
        guardLabel=FakeWidget(text="", visible=False),
        progressBar=FakeWidget(value=0),
        statusLabel=FakeWidget(text=""),
        logTextEdit=FakeTextEdit(),
        reportTableView=FakeTableView(),
        regionTableView=FakeTableView(),
    )


# ------------------------------------------------------------------------------------- slicer modules
class _ScriptedLoadableModule:
    def __init__(self, parent) -> None:
        self.parent = parent


class _ScriptedLoadableModuleWidget:
    def __init__(self, parent=None) -> None:
        self.parent = parent


class _ScriptedLoadableModuleLogic:
    def __init__(self, parent=None) -> None:
        self.moduleName = type(self).__name__[: -len("Logic")]

    def getParameterNode(self):
        scene = slicer.mrmlScene
        node = scene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")
        if node is None:
            node = slicer.vtkMRMLScriptedModuleNode()
            node.SetSingletonTag(self.moduleName)
            node.SetName(self.moduleName)
            node = scene.AddNode(node)
        return node


class _ScriptedLoadableModuleTest(unittest.TestCase):
    def delayDisplay(self, message, msec=None) -> None:  # noqa: N802
        pass


class WithinRange:
    def __init__(self, minimum, maximum) -> None:
        self.minimum, self.maximum = minimum, maximum


def parameterNodeWrapper(cls):  # noqa: N802 - Slicer's name
    """Fake of Slicer's decorator: typed fields with defaults, ``Modified()`` on change, no serialisation."""
    hints = typing.get_type_hints(cls)
    defaults = {name: cls.__dict__.get(name) for name in hints}

    class Wrapper:
        __doc__ = cls.__doc__
        fields = tuple(hints)
        guiConnections: list = []

        def __init__(self, parameterNode) -> None:
            object.__setattr__(self, "parameterNode", parameterNode)
            object.__setattr__(self, "_values", _VALUES.setdefault(parameterNode.GetID(), dict(defaults)))

        def __getattr__(self, name):
            values = object.__getattribute__(self, "_values")
            if name in values:
                return values[name]
            raise AttributeError(name)

        def __setattr__(self, name, value) -> None:
            if name not in hints:
                raise AttributeError(f"{cls.__name__} has no parameter {name!r}")
            self._values[name] = value
            self.parameterNode.Modified()

        def AddObserver(self, event, callback, priority=0.0):  # noqa: N802
            return self.parameterNode.AddObserver(event, callback, priority)

        def RemoveObserver(self, tag) -> None:  # noqa: N802
            self.parameterNode.RemoveObserver(tag)

        def connectGui(self, ui):  # noqa: N802
            Wrapper.guiConnections.append(ui)
            return len(Wrapper.guiConnections)

        def disconnectGui(self, tag) -> None:  # noqa: N802
            pass

    Wrapper.__name__ = cls.__name__
    return Wrapper


_MISSING = object()

#: values of every faked parameter node, by scripted module node ID (two wrappers of one node share them).
_VALUES: dict[str, dict] = {}


class ErrorDisplayRecorder:
    """``slicer.util.errorDisplay``: records messages."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def __call__(self, text, *args, **kwargs) -> None:
        self.messages.append(str(text))


class ConfirmRecorder:
    """``slicer.util.confirmOkCancelDisplay``: records the question, answers ``answer``."""

    def __init__(self) -> None:
        self.questions: list[str] = []
        self.answer = True

    def __call__(self, text, *args, **kwargs) -> bool:
        self.questions.append(str(text))
        return self.answer


@contextlib.contextmanager
def slicer_gui_fakes():
    """Inject the fakes (see the module docstring); yields a namespace with ``scene``, ``errors`` and ``confirm``."""
    qt = types.ModuleType("qt")
    qt.QTimer = FakeTimer
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    i18n.translate = lambda context, text: text
    scripted = types.ModuleType("slicer.ScriptedLoadableModule")
    scripted.ScriptedLoadableModule = _ScriptedLoadableModule
    scripted.ScriptedLoadableModuleWidget = _ScriptedLoadableModuleWidget
    scripted.ScriptedLoadableModuleLogic = _ScriptedLoadableModuleLogic
    scripted.ScriptedLoadableModuleTest = _ScriptedLoadableModuleTest
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.parameterNodeWrapper = parameterNodeWrapper
    wrapper.WithinRange = WithinRange

    modules = {
        "qt": qt,
        "slicer.i18n": i18n,
        "slicer.ScriptedLoadableModule": scripted,
        "slicer.parameterNodeWrapper": wrapper,
    }
    attributes = {
        "i18n": i18n,
        "ScriptedLoadableModule": scripted,
        "parameterNodeWrapper": wrapper,
        "mrmlScene": slicer.vtkMRMLScene(),
    }
    errors, confirm = ErrorDisplayRecorder(), ConfirmRecorder()
    saved_modules = {name: sys.modules.get(name) for name in modules}
    saved_attributes = {name: getattr(slicer, name, _MISSING) for name in attributes}
    saved_error_display, saved_confirm = slicer.util.errorDisplay, slicer.util.confirmOkCancelDisplay
    sys.modules.update(modules)
    for name, value in attributes.items():
        setattr(slicer, name, value)
    slicer.util.errorDisplay = errors
    slicer.util.confirmOkCancelDisplay = confirm
    _VALUES.clear()
    try:
        yield types.SimpleNamespace(scene=attributes["mrmlScene"], errors=errors, confirm=confirm)
    finally:
        slicer.util.errorDisplay = saved_error_display
        slicer.util.confirmOkCancelDisplay = saved_confirm
        for name, module in saved_modules.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        for name, value in saved_attributes.items():
            if value is _MISSING:
                delattr(slicer, name)
            else:
                setattr(slicer, name, value)
        for name in [n for n in sys.modules if n == "MedDenoise"]:
            del sys.modules[name]
        _VALUES.clear()
