"""Designer: draw a workflow on the canvas, edit node properties, validate, save and export."""

from ui.designer_page import render_designer

render_designer()
