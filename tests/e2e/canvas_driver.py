"""Gestures on the designer canvas for the browser tests and the benchmark (stable selectors only)."""

from __future__ import annotations

import re
from typing import Any

Page = Any  # playwright.sync_api.Page (imported lazily by the callers)


def open_designer(page: Page, url: str) -> None:
    page.goto(url)
    page.locator(".sg-pal-item").first.wait_for()


def box_of(locator: Any) -> dict[str, float]:
    """The element's box once it is visible (a rerun may be redrawing it: wait, do not fail)."""
    for _ in range(50):
        locator.wait_for(state="visible")
        box = locator.bounding_box()
        if box is not None:
            return box
        locator.page.wait_for_timeout(100)
    raise AssertionError(f"{locator} never got a box")


def canvas_box(page: Page) -> dict[str, float]:
    return box_of(page.locator(".sg-canvas"))


def drag_from_palette(page: Page, agent: str, x: float, y: float) -> None:
    """Drag the palette entry of ``agent`` to (x, y) relative to the canvas's top-left corner."""
    item = page.locator(f'.sg-pal-item[data-agent="{agent}"]')
    item.scroll_into_view_if_needed()
    box, canvas = box_of(item), canvas_box(page)
    page.mouse.move(box["x"] + 20, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(canvas["x"] + x, canvas["y"] + y, steps=6)
    page.mouse.up()


def node(page: Page, node_id: str) -> Any:
    return page.locator(f'.sg-node[data-id="{node_id}"]')


def connect(page: Page, src: str, src_port: str, dst: str, dst_port: str) -> None:
    """Drag from an output port dot to an input port dot."""
    a = box_of(node(page, src).locator(f'.sg-port.out[data-port="{src_port}"] i'))
    b = box_of(node(page, dst).locator(f'.sg-port.in[data-port="{dst_port}"] i'))
    page.mouse.move(a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2, steps=6)
    page.mouse.up()


def click_node(page: Page, node_id: str, *, shift: bool = False) -> None:
    head = node(page, node_id).locator(".sg-head")
    head.click(modifiers=["Shift"] if shift else None)


def open_tab(page: Page, name: str) -> None:
    """Click a Streamlit tab once the previous run's copy of the page has gone."""
    tab = page.get_by_role("tab", name=name)
    tab.first.wait_for()
    page.wait_for_function(
        "(n) => [...document.querySelectorAll('[role=tab]')].filter(t => t.textContent.trim() === n).length === 1",
        arg=name)
    tab.click()


class HeldPushes:
    """Hold the server's messages to the page between ``hold()`` and ``release()``.

    Routes the Streamlit websocket through Playwright (install before the page opens it). While
    held, Python's reruns still happen but nothing they draw reaches the browser: a gesture made
    then is based on the revision the canvas held before, deterministically (no timing).
    """

    def __init__(self, page: Page) -> None:
        self.page, self.held, self.holding, self.client = page, [], False, None
        page.route_web_socket(re.compile(r".*/_stcore/stream"), self._route)

    def _route(self, ws: Any) -> None:
        server = ws.connect_to_server()
        ws.on_message(server.send)
        server.on_message(self._from_server)
        ws.on_close(lambda code, reason: server.close(code=code, reason=reason))
        server.on_close(lambda code, reason: ws.close(code=code, reason=reason))
        self.client = ws

    def _from_server(self, message: str | bytes) -> None:
        if self.holding:
            self.held.append(message)
        elif self.client is not None:
            self.client.send(message)

    def hold(self) -> None:
        self.holding = True

    def wait_held(self, marker: bytes) -> None:
        """Wait until a held message contains ``marker`` (e.g. the canvas's redraw)."""
        for _ in range(300):
            if any(isinstance(m, bytes) and marker in m for m in self.held):
                return
            self.page.wait_for_timeout(50)
        raise AssertionError(f"the server sent nothing containing {marker!r}")

    def release(self) -> None:
        self.holding = False
        while self.held:
            self.client.send(self.held.pop(0))


def open_template(page: Page, url: str, name: str, nodes: int) -> None:
    """A fresh designer with the template ``name`` open (``nodes`` drawn)."""
    from playwright.sync_api import expect

    open_designer(page, url)
    open_tab(page, "Templates")
    page.get_by_role("button", name=f"Open {name}", exact=True).click()
    expect(page.locator(".sg-node")).to_have_count(nodes)


def export_json(page: Page, path: Any) -> dict[str, Any]:
    """Click Export JSON, keep the download at ``path`` and return the workflow it holds."""
    import json

    with page.expect_download() as info:
        page.get_by_role("button", name="Export JSON").click()
    info.value.save_as(path)
    return dict(json.loads(path.read_text()))
