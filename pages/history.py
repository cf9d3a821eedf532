"""History: stored runs with filters; replay, compare, re-run, resume, export, retention."""

from ui.monitor.history_page import render_history_page

render_history_page()
