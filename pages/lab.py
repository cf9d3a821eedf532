"""Lab: compare scheduling policies, the optimum, what-if, step mode and learned estimates."""

from ui.lab.page import render_lab_page
from ui.shell import enter_page

enter_page(render_lab_page)
