"""Run: start a run (policy, capacity, backend, predicted plan) and watch it live."""

from ui.monitor.run_page import render_run_page
from ui.shell import enter_page

enter_page(render_run_page)
