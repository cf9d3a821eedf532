"""ServiceGrid Studio: the Streamlit entry point (page config, navigation, the machine sidebar).

Start it with ``servicegrid ui`` or ``streamlit run app.py``. The body runs only as __main__ so
that multiprocessing children importing this file do not re-run the app.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui import auth
from ui.render import machine_sidebar
from ui.services import get_capacity

PAGES_DIR = Path(__file__).resolve().parent / "pages"


def main() -> None:
    st.set_page_config(page_title="ServiceGrid Studio", page_icon=":material/hub:", layout="wide")
    pages = [
        st.Page(str(PAGES_DIR / "designer.py"), title="Designer", icon=":material/schema:", default=True),
        st.Page(str(PAGES_DIR / "agents.py"), title="Agents", icon=":material/smart_toy:"),
        st.Page(str(PAGES_DIR / "run.py"), title="Run", icon=":material/play_circle:"),
        st.Page(str(PAGES_DIR / "history.py"), title="History", icon=":material/history:"),
        st.Page(str(PAGES_DIR / "lab.py"), title="Lab", icon=":material/science:"),
    ]
    if auth.lab_mode_enabled() and auth.current_user() is None:
        # lab mode (SERVICEGRID_LAB_MODE=1): nothing but the sign-in page until someone signs in
        st.navigation([st.Page(auth.sign_in_page, title="Sign in", icon=":material/login:")]).run()
        return
    auth.require_user()  # the "signed in as" badge in lab mode; a no-op otherwise
    page = st.navigation(pages)
    machine_sidebar(get_capacity())
    page.run()


if __name__ == "__main__":
    main()
