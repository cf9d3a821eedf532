"""What a first-time user sees: the Designer's getting-started hint and an honest empty History."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def _infos(at: AppTest) -> str:
    return "\n".join(str(i.value) for i in at.info)


def test_empty_designer_explains_how_to_begin_and_cannot_run(app: AppTest) -> None:
    app.run()
    assert not app.exception
    assert "Getting started" in _infos(app) and "Templates" in _infos(app)
    assert app.button(key="designer_run").disabled
    assert any("workflow is empty" in str(c.value) for c in app.caption)
    app.button(key="tpl.two-stage").click().run()
    assert not app.exception
    assert "Getting started" not in _infos(app)
    assert not app.button(key="designer_run").disabled


def test_history_without_runs_says_what_to_do_instead_of_an_empty_table(app: AppTest) -> None:
    app.run()
    app.switch_page("pages/history.py").run()
    assert not app.exception
    assert "No runs match" in _infos(app)
    assert len(app.dataframe) == 0
