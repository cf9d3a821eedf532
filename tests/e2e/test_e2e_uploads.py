"""Your own files from the browser: images for the image source and a TorchScript model for the
generic model agent are uploaded in the properties panel, checked (a fake image is refused with
the reason), kept on the server, and the workflow runs on them end to end."""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import pytest

from tests.e2e.canvas_driver import click_node, connect, drag_from_palette, node, open_designer
from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.test_e2e_designer import choose

expect = pytest.importorskip("playwright.sync_api").expect
pytestmark = pytest.mark.e2e


def _png(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (24, 16)) -> Path:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    path.write_bytes(buf.getvalue())
    return path


def _model(path: Path) -> Path:
    """A TorchScript model for the image source's default output (N x 1 x 64 x 64): 3 classes."""
    import torch

    net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(16, 3))
    with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.9+, still supported
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(net).save(str(path))
    return path


def _uploader(page, label: str):
    return page.locator('[data-testid="stFileUploader"]').filter(has_text=label).locator("input[type=file]")


def test_upload_images_and_a_model_then_run_on_them(page, app_url, tmp_path: Path):
    open_designer(page, app_url)
    drag_from_palette(page, "vision.source", 110, 120)
    expect(page.locator(".sg-node")).to_have_count(1)
    click_node(page, "source_1")
    expect(page.get_by_text("To run on your own images, set Dataset to uploads.")).to_be_visible()
    choose(page, "Dataset", "uploads")
    expect(node(page, "source_1")).to_have_class(re.compile(r"has-error"))  # no image yet

    images = [_png(tmp_path / "red scan.png", (255, 0, 0)), _png(tmp_path / "blue.png", (0, 0, 255))]
    fake = tmp_path / "notes.png"
    fake.write_text("not an image at all")
    _uploader(page, "Images (PNG / JPEG)").set_input_files([*map(str, images), str(fake)])
    expect(page.get_by_text("Kept red_scan.png (PNG, 24 x 16 px)")).to_be_visible()
    expect(page.get_by_text("Kept blue.png (PNG, 24 x 16 px)")).to_be_visible()
    expect(page.get_by_text(re.compile(r"notes\.png was not kept: .*not a PNG or JPEG"))).to_be_visible()
    expect(node(page, "source_1")).not_to_have_class(re.compile(r"has-error"))
    picked = page.get_by_role("combobox", name="Images this node reads")
    expect(picked).to_be_visible()
    # both images are chosen for the node (their tags can be removed one by one)
    expect(page.get_by_role("button", name=re.compile(r"^Remove (red_scan|blue)\.png · "))).to_have_count(2)

    drag_from_palette(page, "custom.model", 430, 120)
    expect(page.locator(".sg-node")).to_have_count(2)
    connect(page, "source_1", "images", "model_1", "in")
    expect(page.locator("path.sg-edge")).to_have_count(1)
    click_node(page, "model_1")
    choose(page, "Input kind", "image_batch")
    _uploader(page, "Model file").set_input_files(str(_model(tmp_path / "tiny model.pt")))
    expect(page.get_by_text("Kept tiny_model.pt (TorchScript model)")).to_be_visible()
    expect(node(page, "model_1")).not_to_have_class(re.compile(r"has-error"))
    expect(page.get_by_text("Problems (0 errors, 0 warnings)")).to_be_visible()  # missing_file cleared
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1500, "height": 1700})  # the properties panel scrolls inside the page
    page.screenshot(path=str(SCREENSHOTS / "designer-uploads.png"))

    page.get_by_role("button", name="Run", exact=True).click()
    expect(node(page, "model_1")).to_have_attribute("data-status", "done", timeout=60000)
    expect(node(page, "source_1")).to_have_attribute("data-status", "done")


def test_upload_a_csv_and_pick_its_text_column(page, app_url, tmp_path: Path):
    open_designer(page, app_url)
    drag_from_palette(page, "text.source", 110, 120)
    drag_from_palette(page, "text.sentiment", 430, 120)
    connect(page, "source_1", "texts", "sentiment_1", "texts")
    click_node(page, "source_1")
    expect(page.get_by_text("To read your own texts from a file, set Mode to file.")).to_be_visible()
    choose(page, "Mode", "file")
    expect(node(page, "source_1")).to_have_class(re.compile(r"has-error"))  # no file named yet
    tickets = tmp_path / "tickets.csv"
    tickets.write_text("id,body\n1,I love it, works perfectly\n2,Terrible, it broke after a day\n", encoding="utf-8")
    _uploader(page, "Text file").set_input_files(str(tickets))
    expect(page.get_by_text("Kept tickets.csv (CSV, 2 rows; columns id, body)")).to_be_visible()
    expect(page.get_by_text(re.compile(r"This file has no column text"))).to_be_visible()
    choose(page, "Column holding the text", "body")
    expect(page.get_by_text(re.compile(r"This file has no column"))).to_have_count(0)
    expect(node(page, "source_1")).not_to_have_class(re.compile(r"has-error"))
    page.get_by_role("button", name="Run", exact=True).click()
    expect(node(page, "sentiment_1")).to_have_attribute("data-status", "done", timeout=60000)


def test_upload_a_table_pick_its_truth_column_and_score_it(page, app_url, tmp_path: Path):
    """A user's own transactions CSV: kept with its shape, its ground-truth column picked from its
    header, the wire labelled with its rows, and the fraud scorer runs on it."""
    from tests.agents.test_table_io import _transactions_csv

    open_designer(page, app_url)
    drag_from_palette(page, "tabular.csv", 110, 120)
    drag_from_palette(page, "tabular.fraud_score", 430, 120)
    connect(page, "csv_1", "table", "fraud_score_1", "table")
    click_node(page, "csv_1")
    expect(node(page, "csv_1")).to_have_class(re.compile(r"has-error"))  # no file named yet
    finding = page.locator('[data-testid="stAlert"]:not([data-testid="stExpander"] *)').filter(has_text="names no file to read")  # the panel
    expect(finding).to_contain_text("upload the file(s) in the designer's properties panel (Your files)")  # the hint
    _uploader(page, "Table (.csv").set_input_files(str(_transactions_csv(tmp_path / "my transactions.csv", 120)))
    expect(page.get_by_text(re.compile(r"Kept my_transactions\.csv \(table, 120 rows x 9 columns \(8 numeric\)"))) \
        .to_be_visible()
    expect(node(page, "csv_1")).not_to_have_class(re.compile(r"has-error"))
    expect(page.get_by_text(re.compile(r"First 5 rows as read: amount \(float\), hour \(float\)"))).to_be_visible()
    expect(page.locator(".sg-edge-label")).to_contain_text("120 items")
    choose(page, "Ground-truth column", "is_fraud")
    expect(page.get_by_role("textbox", name="Target")).to_have_value("is_fraud")  # the node holds it
    page.get_by_role("button", name="Run", exact=True).click()
    expect(node(page, "fraud_score_1")).to_have_attribute("data-status", "done", timeout=60000)


def test_a_sample_table_is_one_click_away(page, app_url):
    """A class without data of its own: the sample button keeps a generated table, points the
    node at it with its ground truth, and the credit scorer runs on it."""
    open_designer(page, app_url)
    drag_from_palette(page, "tabular.csv", 110, 120)
    drag_from_palette(page, "tabular.credit_score", 430, 120)
    connect(page, "csv_1", "table", "credit_score_1", "table")
    click_node(page, "csv_1")
    page.get_by_role("button", name="Sample: credit applicants").click()
    expect(page.get_by_text(re.compile(r"Kept sample_credit_applicants\.csv \(table, 300 rows"))).to_be_visible()
    expect(page.get_by_role("textbox", name="Target")).to_have_value("defaulted")
    expect(node(page, "csv_1")).not_to_have_class(re.compile(r"has-error"))
    page.get_by_role("button", name="Run", exact=True).click()
    expect(node(page, "credit_score_1")).to_have_attribute("data-status", "done", timeout=60000)
