"""History: stored runs with filters; replay, compare, re-run, resume, export, retention."""

from ui.monitor.history_page import render_history_page
from ui.shell import enter_page

enter_page(render_history_page)
