"""Dark Fusion theme and icon lookup (qtawesome) shared by all widgets."""
from __future__ import annotations

import logging

from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication

log = logging.getLogger(__name__)

ICON_COLOR = "#d8dee9"
ACCENT = QColor(90, 160, 230)


def apply_dark_theme(app: QApplication) -> None:
    """Switch the application to the Fusion style with a dark palette (reading rooms are dark)."""
    app.setStyle("Fusion")
    pal = QPalette()
    base, window, text = QColor(24, 26, 30), QColor(36, 38, 43), QColor(220, 223, 228)
    disabled = QColor(120, 123, 128)
    pal.setColor(QPalette.ColorRole.Window, window)
    pal.setColor(QPalette.ColorRole.WindowText, text)
    pal.setColor(QPalette.ColorRole.Base, base)
    pal.setColor(QPalette.ColorRole.AlternateBase, window)
    pal.setColor(QPalette.ColorRole.ToolTipBase, window)
    pal.setColor(QPalette.ColorRole.ToolTipText, text)
    pal.setColor(QPalette.ColorRole.PlaceholderText, disabled)
    pal.setColor(QPalette.ColorRole.Text, text)
    pal.setColor(QPalette.ColorRole.Button, window)
    pal.setColor(QPalette.ColorRole.ButtonText, text)
    pal.setColor(QPalette.ColorRole.BrightText, QColor(255, 90, 90))
    pal.setColor(QPalette.ColorRole.Link, ACCENT)
    pal.setColor(QPalette.ColorRole.Highlight, ACCENT)
    pal.setColor(QPalette.ColorRole.HighlightedText, QColor(10, 10, 10))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    app.setPalette(pal)


def icon(name: str, color: str = ICON_COLOR) -> QIcon:
    """A qtawesome icon such as ``"mdi6.folder-open"``; an empty icon if the name is unknown."""
    try:
        import qtawesome

        return qtawesome.icon(name, color=color)
    except Exception as exc:  # qtawesome raises plain Exception for unknown names
        log.debug("icon %s unavailable: %s", name, exc)
        return QIcon()
