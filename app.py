"""ServiceGrid Studio: the Streamlit entry point (page config, navigation, the machine sidebar).

Start it with ``servicegrid ui`` or ``streamlit run app.py``. The shell lives in ui/shell.py; the
body runs only as __main__ so that multiprocessing children importing this file do not re-run the app.
"""

from __future__ import annotations

from ui.shell import run_app


def main() -> None:
    run_app()


if __name__ == "__main__":
    main()
