"""Gestures on the designer canvas for the browser tests and the benchmark (stable selectors only)."""

from __future__ import annotations

from typing import Any

Page = Any  # playwright.sync_api.Page (imported lazily by the callers)


def open_designer(page: Page, url: str) -> None:
    page.goto(url)
    page.locator(".sg-pal-item").first.wait_for()


def canvas_box(page: Page) -> dict[str, float]:
    return page.locator(".sg-canvas").bounding_box()


def drag_from_palette(page: Page, agent: str, x: float, y: float) -> None:
    """Drag the palette entry of ``agent`` to (x, y) relative to the canvas's top-left corner."""
    item = page.locator(f'.sg-pal-item[data-agent="{agent}"]')
    item.scroll_into_view_if_needed()
    box, canvas = item.bounding_box(), canvas_box(page)
    page.mouse.move(box["x"] + 20, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(canvas["x"] + x, canvas["y"] + y, steps=6)
    page.mouse.up()


def node(page: Page, node_id: str) -> Any:
    return page.locator(f'.sg-node[data-id="{node_id}"]')


def connect(page: Page, src: str, src_port: str, dst: str, dst_port: str) -> None:
    """Drag from an output port dot to an input port dot."""
    a = node(page, src).locator(f'.sg-port.out[data-port="{src_port}"] i').bounding_box()
    b = node(page, dst).locator(f'.sg-port.in[data-port="{dst_port}"] i').bounding_box()
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
