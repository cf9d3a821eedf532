"""Designer: draw a workflow on the canvas, edit node properties, validate, save and export."""

from ui.designer_page import render_designer
from ui.shell import enter_page

enter_page(render_designer)
