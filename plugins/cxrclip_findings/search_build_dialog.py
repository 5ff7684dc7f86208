"""The "Build index…" dialog: source folders (one or more) and the index folder to write.

It only collects the choice; the Search panel starts the build. Building into
an existing index folder resumes a cancelled build and adds new studies.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog, QDialogButtonBox, QFileDialog, QHBoxLayout, QLabel, QLineEdit, QListWidget,
    QPushButton, QVBoxLayout, QWidget)

from plugins.cxrclip_findings.ui_common import ERROR_STYLE, MUTED_STYLE

HINT = ("Folders of DICOM or MIMIC-CXR-JPG-style PNG/JPEG studies. Building into an existing "
        "index resumes a cancelled build and embeds only studies not indexed yet.")


class BuildIndexDialog(QDialog):
    """Pick source folders and an output folder; ``choice()`` after ``accept``."""

    def __init__(self, parent: QWidget | None = None, sources: list[str] | None = None,
                 index_dir: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Build archive index")
        self.setMinimumWidth(520)
        self.sources = QListWidget(self)
        self.sources.addItems([s for s in sources or [] if s])
        add, remove = QPushButton("Add folder…", self), QPushButton("Remove", self)
        add.clicked.connect(self._add_source)
        remove.clicked.connect(self._remove_source)
        self.output = QLineEdit(index_dir, self)
        self.output.setPlaceholderText("folder for the index (created if new)")
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse_output)
        self.error = QLabel("", self)
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.setWordWrap(True)
        hint = QLabel(HINT, self)
        hint.setWordWrap(True)
        hint.setStyleSheet(MUTED_STYLE)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Build")
        buttons.accepted.connect(self._accept_if_valid)
        buttons.rejected.connect(self.reject)
        self._lay_out(add, remove, browse, hint, buttons)

    def _lay_out(self, add: QPushButton, remove: QPushButton, browse: QPushButton,
                 hint: QLabel, buttons: QDialogButtonBox) -> None:
        source_buttons = QHBoxLayout()
        source_buttons.addWidget(add)
        source_buttons.addWidget(remove)
        source_buttons.addStretch(1)
        output_row = QHBoxLayout()
        output_row.addWidget(self.output, 1)
        output_row.addWidget(browse)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Source folders", self))
        layout.addWidget(self.sources)
        layout.addLayout(source_buttons)
        layout.addWidget(QLabel("Index folder", self))
        layout.addLayout(output_row)
        layout.addWidget(hint)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

    def _add_source(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Add a folder of studies")
        if path and not self.sources.findItems(path, Qt.MatchFlag.MatchExactly):
            self.sources.addItem(path)

    def _remove_source(self) -> None:
        for item in self.sources.selectedItems():
            self.sources.takeItem(self.sources.row(item))

    def _browse_output(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Index folder")
        if path:
            self.output.setText(path)

    def choice(self) -> tuple[list[Path], Path]:
        """(source folders, index folder) as entered."""
        sources = [Path(self.sources.item(i).text()) for i in range(self.sources.count())]
        return sources, Path(self.output.text().strip()).expanduser()

    def problem(self) -> str:
        """Why the choice cannot be built ("" when it can)."""
        sources, output = self.choice()
        if not sources:
            return "Add at least one folder of studies."
        missing = [str(s) for s in sources if not s.is_dir()]
        if missing:
            return f"Not a folder: {', '.join(missing)}"
        if not self.output.text().strip():
            return "Choose the index folder."
        if output.exists() and not output.is_dir():
            return f"The index folder {output} is a file; choose a folder."
        return ""

    def _accept_if_valid(self) -> None:
        problem = self.problem()
        self.error.setText(problem)
        if not problem:
            self.accept()

