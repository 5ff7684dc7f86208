"""The application state of the viewer, free of Qt (napari's ``ViewerModel`` shape).

One `ViewerModel` holds what the user opened and how it is shown: the scan
result (patients, studies), the current study and, in the comparison layout,
its prior; the layout; the selected view; one `DisplayState` per shown view
with the W/L sync and the comparison links; Hide-PHI; the measurements. Qt
widgets subscribe to its signals and only present it; the plugin host reads
it. Every signal is a `viewer.model.events.Signal`:

- ``scan_changed(scan)`` after a folder was scanned (or cleared with None);
- ``study_opened(StudyHandle)`` / ``study_closed(StudyHandle)``;
- ``selection_changed(view_id | None)``;
- ``layout_changed(layout)``: ``"study"`` (all views of the current study)
  or ``"compare"`` (current frontal beside the prior frontal);
- ``prior_changed(StudyHandle | None)``: the prior shown in the comparison;
- ``phi_hidden_changed(hidden)``; ``sync_changed(enabled)``;
- ``measurements`` (a `MeasurementStore`) has its own signals.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from viewer.model.calibration import calibration_for
from viewer.model.display import DisplayState, WindowSync
from viewer.model.events import Signal
from viewer.model.linking import GeometryLink
from viewer.model.measurement_store import MeasureContext, MeasurementStore
from viewer.model.phi import Redactor, view_label
from viewer.model.priors import find_prior, frontal_view
from viewer.model.study import Study, StudyTree, View
from viewer.plugin_api import StudyHandle, ViewHandle

if TYPE_CHECKING:
    from viewer.io.scan import ScanResult

LAYOUTS = ("study", "compare")


class NoPriorError(ValueError):
    """The comparison layout was asked for a study without a prior."""


class ViewerModel:
    """Everything the viewer shows, as plain Python state with signals."""

    def __init__(self, make_handle: Callable[[View], ViewHandle] | None = None) -> None:
        for name in ("scan_changed", "study_opened", "study_closed", "selection_changed",
                     "layout_changed", "prior_changed", "phi_hidden_changed", "sync_changed"):
            setattr(self, name, Signal())
        self._make_handle = make_handle or ViewHandle
        self.scan: ScanResult | None = None
        self.current_study: StudyHandle | None = None
        self.prior_study: StudyHandle | None = None
        self.layout = "study"
        self.selected_view_id: str | None = None
        self.hide_phi = False
        self.redactor = Redactor()
        self.sync = WindowSync(enabled=False)  # the user's "Sync W/L" across shown views
        # current <-> prior in "compare", relative: the two may come from different devices
        self.compare_window = WindowSync(enabled=True, relative=True)
        self.compare_geometry = GeometryLink(enabled=True)
        self.measurements = MeasurementStore()
        self.measurements.context_factory = self._measure_context
        self._states: dict[str, DisplayState] = {}

    # --- scan ------------------------------------------------------------------
    @property
    def tree(self) -> StudyTree | None:
        return None if self.scan is None else self.scan.studies

    def set_scan(self, scan: ScanResult | None, root: str | Path | None = None) -> None:
        """Replace the opened folder's result (closes the shown study)."""
        self.close_study()
        self.scan = scan
        if scan is not None:
            self.redactor.add_tree(scan.studies)
        if root is not None:
            self.redactor.add_path(root)
        self.scan_changed.emit(scan)

    def study(self, study_uid: str) -> Study | None:
        return None if self.tree is None else self.tree.study(study_uid)

    # --- studies ---------------------------------------------------------------
    def open_study(self, study: Study) -> StudyHandle:
        """Close the current study and make ``study`` current (layout "study")."""
        self.close_study()
        handle = StudyHandle(study, [self._make_handle(v) for v in study.views()])
        self.current_study = handle
        self.study_opened.emit(handle)
        if handle.views:
            self.select_view(handle.views[0].view_id)
        return handle

    def close_study(self) -> None:
        """Leave the comparison, drop measurements and display states, tell subscribers."""
        if self.current_study is None:
            return
        closing = self.current_study
        self.measurements.clear()  # while its views are still open, for subscribers
        self._set_prior(None)
        self.layout = "study"
        self.current_study = None
        self.selected_view_id = None
        for state in self._states.values():
            self.sync.remove(state)
        self._states.clear()
        self.study_closed.emit(closing)

    def adjacent_study(self, step: int, order: list[str] | None = None) -> Study | None:
        """The study ``step`` places after (negative: before) the current one in ``order``
        (study UIDs, e.g. the study list's sorting; default the scan's order), wrapping
        around; the first study when none is shown; None without studies."""
        if self.tree is None:
            return None
        uids = order if order is not None else [s.study_uid for s in self.tree.studies()]
        uids = [u for u in uids if self.tree.study(u) is not None]
        if not uids:
            return None
        current = self.current_study.study_uid if self.current_study else None
        index = (uids.index(current) + step) % len(uids) if current in uids else 0
        return self.tree.study(uids[index])

    def prior_candidate(self) -> Study | None:
        """The prior of the current study among the scanned studies, or None."""
        if self.current_study is None or self.tree is None:
            return None
        return find_prior(self.tree, self.current_study.study)

    # --- layout ----------------------------------------------------------------
    def set_layout(self, layout: str) -> None:
        """``"study"`` or ``"compare"``; raises NoPriorError when there is nothing to compare."""
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if layout == self.layout:
            return
        if layout == "compare":
            prior = self.prior_candidate()
            if prior is None:
                raise NoPriorError("no earlier study of this patient among the opened folders; "
                                   "open the folder that holds the prior study too")
            self._set_prior(StudyHandle(prior, [self._make_handle(v) for v in prior.views()]))
        else:
            self._set_prior(None)
        self.layout = layout
        shown = {h.view_id for h in self.shown_views()}
        if self.selected_view_id not in shown:
            self.selected_view_id = None
        self.layout_changed.emit(layout)
        if self.selected_view_id is None and shown:
            self.select_view(self.shown_views()[0].view_id)

    def _set_prior(self, prior: StudyHandle | None) -> None:
        if prior is None and self.prior_study is None:
            return
        if self.prior_study is not None:
            ids = {h.view_id for h in self.prior_study.views}
            self.measurements.clear(ids)
            for view_id in ids:
                self._states.pop(view_id, None)
        for state in self.compare_window.states:
            self.compare_window.remove(state)
        self.compare_geometry.clear()
        self.prior_study = prior
        if prior is not None:
            for handle in self.shown_views(layout="compare"):
                self.compare_window.add(self.display_state(handle.view_id))
                self.compare_geometry.add(self.display_state(handle.view_id))
        self.prior_changed.emit(prior)

    def shown_views(self, layout: str | None = None) -> list[ViewHandle]:
        """The views of ``layout`` (default: the current one), left to right."""
        if self.current_study is None:
            return []
        if (layout or self.layout) == "study" or self.prior_study is None:
            return list(self.current_study.views)
        pair = []
        for study in (self.current_study, self.prior_study):
            view = frontal_view(study.study)
            if view is not None:
                pair.append(study.view(view.view_id))
        return pair

    def study_of(self, view_id: str) -> StudyHandle | None:
        """The open study (current or prior) that holds ``view_id``."""
        for study in (self.current_study, self.prior_study):
            if study is not None and any(h.view_id == view_id for h in study.views):
                return study
        return None

    def view_handle(self, view_id: str | None) -> ViewHandle | None:
        study = self.study_of(view_id) if view_id else None
        return None if study is None else study.view(view_id)

    # --- selection and display -------------------------------------------------
    def select_view(self, view_id: str | None) -> None:
        """Make ``view_id`` (a shown view) the selected one; tools and plugins follow it."""
        if view_id == self.selected_view_id:
            return
        if view_id is not None and self.view_handle(view_id) is None:
            raise KeyError(f"view {view_id!r} is not open")
        self.selected_view_id = view_id
        self.selection_changed.emit(view_id)

    @property
    def selected_view(self) -> ViewHandle | None:
        return self.view_handle(self.selected_view_id)

    def display_state(self, view_id: str) -> DisplayState:
        """The `DisplayState` of an open view (created on first use, in the W/L sync)."""
        state = self._states.get(view_id)
        if state is None:
            state = DisplayState()
            self._states[view_id] = state
            self.sync.add(state)
        return state

    def set_sync_window(self, enabled: bool) -> None:
        """Copy W/L changes of one shown view to the others (the "Sync W/L" toggle)."""
        if bool(enabled) != self.sync.enabled:
            self.sync.enabled = bool(enabled)
            self.sync_changed.emit(self.sync.enabled)

    # --- identifiers -----------------------------------------------------------
    def set_hide_phi(self, hide: bool) -> None:
        if bool(hide) != self.hide_phi:
            self.hide_phi = bool(hide)
            self.phi_hidden_changed.emit(self.hide_phi)

    def view_number(self, view: View) -> int | None:
        """The view's place in its study's reading order (1-based), or None."""
        study = self.study_of(view.view_id)
        if study is None:
            return None
        return [h.view_id for h in study.views].index(view.view_id) + 1

    def view_label(self, view: View) -> str:
        """The label of ``view`` as shown now ("Image 2" for an unlabelled view while hidden)."""
        return view_label(view, self.hide_phi, self.view_number(view))

    # --- measurements ----------------------------------------------------------
    def write_measurements_sr(self, path: str | Path, include_identifiers: bool = False) -> Path:
        """Save the measurements on DICOM views as a TID 1500 SR (see viewer.model.measurement_sr)."""
        from viewer.model.measurement_sr import SRItem, write_measurement_sr

        store, items, units = self.measurements, [], {}
        for m in store.all():
            handle = self.view_handle(m.view_id)
            if handle is not None:
                context = store.context(m.view_id)
                items.append(SRItem(m, store.result(m), context.calibration, handle.meta))
                units[m.view_id] = context.value_unit
        return write_measurement_sr(items, path, include_identifiers, units)

    def _measure_context(self, view_id: str) -> MeasureContext:
        handle = self.view_handle(view_id)
        if handle is None:
            return MeasureContext()
        meta = handle.meta
        label = meta.display_label
        if self.prior_study is not None and self.study_of(view_id) is self.prior_study:
            label = f"prior {label}"
        unit = "HU" if meta.modality.upper() == "CT" else ""
        return MeasureContext(calibration_for(meta), handle.modality_pixels, unit, label)
