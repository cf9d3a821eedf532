"""Names of the keys this app keeps in ``st.session_state`` and ``st.query_params`` (one place)."""

from __future__ import annotations

DESIGNER = "designer_session"  # ui.editor.DesignerSession of the open workflow
DESIGNER_CANVAS = "sg_canvas"  # the canvas component's widget key
DESIGNER_CANVAS_ACK = "designer_canvas_ack"  # the last canvas report taken ({sid, seq}), sent back to it
IMPORT_UPLOAD = "designer_import"  # file uploader of the import panel
RUN_ID = "run_id"  # the run started from the designer (also mirrored in the URL)
FLASH = "designer_flash"  # one-shot message shown at the top of the designer after a rerun

QP_WORKFLOW = "wf"  # query parameter: id of the workflow open in the designer
QP_RUN = "run"  # query parameter: id of the run being watched
QP_INSIDE = "inside"  # query parameter: the component open for editing, with the path to it ("triage/intent kit")
QP_INSIDE_NODE = "from"  # query parameter: the workflow's node it was opened from
