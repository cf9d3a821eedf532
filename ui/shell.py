"""The app shell: page config, our navigation, the machine sidebar; pages/*.py enter through it.

A page script opened before app.py ever ran (the very first request of a fresh server is /history,
say) is started by Streamlit's legacy ``pages/`` auto-discovery, which shows a plain file list and
skips app.py. :func:`enter_page` notices that and runs the shell instead, whose ``st.navigation``
switches Streamlit to our navigation for good and then runs the requested page.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path

import streamlit as st
from streamlit import runtime

from ui import auth
from ui.render import machine_sidebar
from ui.services import get_capacity

PAGES_DIR = Path(__file__).resolve().parents[1] / "pages"
PAGES = (  # (file in pages/, title, icon); the first is the default page
    ("designer.py", "Designer", ":material/schema:"),
    ("agents.py", "Agents", ":material/smart_toy:"),
    ("run.py", "Run", ":material/play_circle:"),
    ("history.py", "History", ":material/history:"),
    ("lab.py", "Lab", ":material/science:"),
)
_IN_SHELL: ContextVar[bool] = ContextVar("servicegrid_in_shell", default=False)
_frozen = threading.Event()


def freeze_startup_heap() -> bool:
    """Once per server process, after its first page: move every object alive now (the modules
    of torch, pandas, Altair, SQLAlchemy, Streamlit and the app, ~340,000 objects) out of the
    collector's reach (``gc.freeze``), so a full collection scans only what was made since: 155 ms
    -> under 1 ms measured with the app's imports. Full collections hold the GIL, so each one
    stalled every engine thread of a run in progress for its length. True on the call that froze.
    Only in a served app: a test's AppTest has no Runtime, and its process's heap is left alone."""
    if _frozen.is_set() or not runtime.exists():
        return False
    _frozen.set()
    gc.freeze()
    return True


def app_pages() -> list[st.Page]:
    return [st.Page(str(PAGES_DIR / file), title=title, icon=icon, default=i == 0)
            for i, (file, title, icon) in enumerate(PAGES)]


def run_app() -> None:
    """The whole app for one script run: config, sign-in gate (lab mode), navigation, sidebar, page."""
    st.set_page_config(page_title="ServiceGrid Studio", page_icon=":material/hub:", layout="wide")
    if auth.lab_mode_enabled() and auth.current_user() is None:
        # lab mode (SERVICEGRID_LAB_MODE=1): nothing but the sign-in page until someone signs in
        st.navigation([st.Page(auth.sign_in_page, title="Sign in", icon=":material/login:")]).run()
        return
    auth.require_user()  # the "signed in as" badge in lab mode; a no-op otherwise
    page = st.navigation(app_pages())
    machine_sidebar(get_capacity())
    token = _IN_SHELL.set(True)
    try:
        page.run()
    finally:
        _IN_SHELL.reset(token)
        freeze_startup_heap()


def enter_page(render: Callable[[], None]) -> None:
    """A page script's body: draw the page when the shell runs it, else run the shell (see above)."""
    if _IN_SHELL.get():
        render()
    else:
        run_app()
