"""The static site (`python -m benchmark site`): its pages hold the leaderboard CSV's numbers, escape what rows
carry, fetch nothing, show the galleries saved beside the rows; and in headless Chromium (driven over the DevTools
protocol) it loads without console errors, sorts by any column, opens a cell's panel with its accuracy curve and
shows a method's gallery."""
from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

from benchmark.cli import main
from benchmark.report.gallery import GALLERY_DIR, gallery_name, write_gallery
from benchmark.report.leaderboard import DETECT_COLUMN
from benchmark.report.tables import write_leaderboard
from benchmark.report.site import curve_svg, write_site
from tests.test_leaderboard import PUBLISHED, PUBLISHED_ROWS, _row

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "references" / "cifar10-resnet18.csv"
EVIL = "<script>window.__pwned = 1</script>"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _full(method: str, countermeasure: str, seed: int, acc: float | None, **fields) -> dict:
    """A schema-2 row with what the site shows: curve, timings, perturbation, budget, parameters, provenance."""
    final = acc if acc is not None else 0.1
    return _row(method, countermeasure, seed, acc, **{
        "history": [[1, round(final / 2, 4)], [2, round(final * 0.8, 4)], [3, final]],
        "seconds": {"generate": 1.5, "train": 12.25, "total": 14.0},
        "perturbation": {"linf": 8 / 255, "l2_mean": 1.25, "psnr": 35.5, "ssim": 0.97},
        "budget": "L∞ ≤ 8/255", "method_params": {"eps": 8.0}, "countermeasure_params": {"quality": 10},
        "device": "cpu", "device_name": "test CPU", "threads": 1, "poison_ratio": 1.0,
        "preset": "quick", "preset_id": "9" * 64} | fields)


def synthetic_rows() -> list[dict]:
    """clean and ops on one seed, em on two seeds that disagree (unstable), a failed ops cell (incomplete), and a
    configuration whose label and fields carry HTML."""
    return [
        _full("clean", "none", 0, 0.62), _full("clean", "jpeg10", 0, 0.55), _full("clean", "grayscale", 0, 0.57),
        _full("em", "none", 0, 0.12), _full("em", "none", 1, 0.30), _full("em", "jpeg10", 0, 0.51),
        _full("em", "jpeg10", 1, 0.53), _full("em", "grayscale", 0, 0.40), _full("em", "grayscale", 1, 0.41),
        _full("ops", "none", 0, 0.25), _full("ops", "jpeg10", 0, 0.44),
        _full("ops", "grayscale", 0, None, status="failed", error="<img src=x onerror=\"window.__pwned=2\">"),
        _full("lsp", "none", 0, 0.35, method_label=EVIL, budget="<b>L2</b>",
              countermeasure_params={"quality": "<i>10</i>"}, perturbation={"<u>l2</u>": 1.3}),
    ]


def _write_rows(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


class _Table(HTMLParser):
    """The #board table: per body row, the method and each cell's data-value and text."""

    def __init__(self) -> None:
        super().__init__()
        self.header: list[str] = []
        self.rows: list[list[tuple[str | None, str]]] = []
        self._in_table = self._in_head = False
        self._cell: list | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id") == "board":
            self._in_table = True
        elif self._in_table and tag == "thead":
            self._in_head = True
        elif self._in_table and tag == "tr" and not self._in_head:
            self.rows.append([])
        elif self._in_table and tag in ("th", "td"):
            self._cell = [attrs.get("data-value"), ""]

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data

    def handle_endtag(self, tag):
        if not self._in_table:
            return
        if tag in ("th", "td") and self._cell is not None:
            value, text = self._cell
            if self._in_head:
                self.header.append(text.strip())
            else:
                self.rows[-1].append((value, text.strip()))
            self._cell = None
        elif tag == "thead":
            self._in_head = False
        elif tag == "table":
            self._in_table = False


def parse_board(page: Path) -> tuple[list[str], dict[str, dict[str, tuple[str | None, str]]]]:
    parser = _Table()
    parser.feed(page.read_text())
    columns = parser.header[1:]
    return columns, {row[0][1]: dict(zip(columns, row[1:])) for row in parser.rows}


def markdown_table(path: Path) -> dict[str, dict[str, str]]:
    """The first table of a leaderboard Markdown file: method → column → text."""
    lines: list[str] = []
    for line in path.read_text().splitlines():
        if line.startswith("|"):
            lines.append(line)
        elif lines:  # the first table ends here
            break
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return {cells[0]: dict(zip(header[1:], cells[1:]))
            for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines[2:])}


def assert_board_equals_csv(page: Path, csv: Path, markdown: Path | None = None) -> None:
    columns, table = parse_board(page)
    expected = pd.read_csv(csv, index_col="method")
    measured = _measured(expected)
    accuracies = [c for c in expected.columns if c not in measured]
    summaries = ["worst", "mean"]  # first, then the budget, then the countermeasures: the ranking in view
    assert columns == [*summaries, "PSNR (dB)", "SSIM", "L∞ (/255)", "L2",
                       *(["detect AUROC"] if DETECT_COLUMN in measured else []), "budget class", "rank in class",
                       *[c for c in accuracies if c not in summaries]]
    assert list(table) == list(expected.index)
    for method in expected.index:  # the measures: the same numbers as the CSV's (an unchanged set's ∞ sorts first)
        for site_column, csv_column in (("PSNR (dB)", "psnr_db"), ("SSIM", "ssim"), ("L2", "l2")):
            value, _ = table[method][site_column]
            want = expected.at[method, csv_column]
            if pd.isna(want):  # rows without measures
                assert value == "", (method, csv_column)
                continue
            assert float(value) == (1e9 if want == float("inf") else pytest.approx(want, abs=1e-3)), (method, csv_column)
        if DETECT_COLUMN in measured:
            value, _ = table[method]["detect AUROC"]
            want = expected.at[method, DETECT_COLUMN]
            assert value == "" if pd.isna(want) else float(value) == pytest.approx(want, abs=1e-3), method
        assert table[method]["budget class"][1] == expected.at[method, "budget_class"]
    md = markdown_table(markdown) if markdown else None
    for method in expected.index:
        for column in accuracies:
            value, text = table[method][column]
            want = expected.at[method, column]
            if pd.isna(want):
                assert value == "", (method, column, value)
                continue
            assert float(value) == pytest.approx(want, abs=1e-9), (method, column)
            shown = float(re.match(r"-?\d+\.\d", text).group())
            assert abs(shown - want) <= 0.05 + 1e-9, (method, column, text, want)
            if md is not None:
                assert text == md[method][column], (method, column)


@pytest.fixture(scope="module")
def published_site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("published-site")
    assert main(["site", *map(str, PUBLISHED_ROWS), "--out", str(out), "--reference", str(REFERENCE)]) == 0
    return out


def _write_galleries(folder: Path, labels: list[str], seeds: list[int]) -> dict[str, bytes]:
    """FOLDER/gallery/LABEL-seedS.png of random images for each label and seed; file name → bytes."""
    written = {}
    for k, (label, seed) in enumerate((label, seed) for label in labels for seed in seeds):
        gen = torch.Generator().manual_seed(k)
        clean = torch.randint(0, 256, (4, 3, 8, 8), generator=gen, dtype=torch.uint8)
        path = write_gallery(folder / GALLERY_DIR / gallery_name(label, seed), clean, 255 - clean,
                             torch.tensor([0, 1, 0, 1]), ["cat", "dog"])
        written[path.name] = path.read_bytes()
    return written


@pytest.fixture(scope="module")
def synthetic_site(tmp_path_factory) -> tuple[Path, Path]:
    """The synthetic rows' site and the folder of their leaderboard files (CSV, Markdown); beside the rows file,
    galleries of em (seeds 0 and 1, as its rows), and of ops and the HTML-labelled configuration (seeds 0 and 5:
    their rows have seed 0 only)."""
    rows = _write_rows(tmp_path_factory.mktemp("rows") / "results.jsonl", synthetic_rows())
    _write_galleries(rows.parent, ["em"], [0, 1])
    _write_galleries(rows.parent, [EVIL, "ops"], [0, 5])
    files = tmp_path_factory.mktemp("leaderboard")
    write_leaderboard([rows], files)
    out = tmp_path_factory.mktemp("synthetic-site")
    write_site([rows], out)
    return out, files


# ---- pages (no browser) ----

def test_the_published_board_shows_the_csv_and_markdown_numbers(published_site):
    assert_board_equals_csv(published_site / "board.html", PUBLISHED / "cifar10-quick.csv",
                            PUBLISHED / "cifar10-quick.md")
    index = (published_site / "index.html").read_text()
    assert "dh-robust 39.4 (19.6 dB), cuda 41.2 (19.1 dB), tap 52.4 (31.7 dB)" in index  # the leaders, with their PSNR
    assert "href=\"board.html\"" in index and "href=\"compare.html\"" in index and "method-dh-8.html" in index


def test_the_compare_page_lists_the_facts(published_site):
    page = (published_site / "compare.html").read_text()
    assert "Qualitative facts:" in page and "grayscale restores EM and LSP" in page and "reproduced" in page


def test_method_pages_show_budget_and_perturbation(published_site):
    page = (published_site / "method-ops.html").read_text()
    assert "L0 ≤ 1 pixel" in page
    for key in ("linf", "l2_mean", "l0_max", "psnr", "ssim", "changed_fraction"):
        assert f">{key}</th>" in page
    em = (published_site / "method-em.html").read_text()  # the settings as run, not the placeholders
    assert "<dt>steps</dt><dd>10</dd>" in em and "<dt>arch</dt><dd>fastcnn</dd>" in em and "<dd>0</dd>" not in em


def test_synthetic_board_marks_seeds_gaps_and_instability(synthetic_site):
    out, files = synthetic_site
    assert_board_equals_csv(out / "board.html", files / "leaderboard.csv", files / "leaderboard.md")
    _, table = parse_board(out / "board.html")
    assert table["em"]["none"][1] == "21.0 ± 9.0†"  # two seeds 12 and 30: unstable
    assert table["ops"]["grayscale"] == ("", "failed")
    assert table["ops"]["worst"][1].endswith("*") and not table["clean"]["worst"][1].endswith("*")
    page = (out / "board.html").read_text()
    panel = re.search(r'<section class="panel" id="cell-\d+-\d+" data-method="em" data-countermeasure="none">(.*?)'
                      r"</section>", page, re.S).group(1)
    assert panel.count("<polyline") == 2 and "seed 0" in panel and "seed 1" in panel
    assert "12.25" in panel and "a" * 40 in panel and "test CPU" in panel and "quality" in panel


def test_curve_svg_scales_epochs_and_accuracy():
    svg = curve_svg([("seed 0", [[0, 0.0], [10, 1.0]])], width=200, height=100)
    points = re.search(r'points="([^"]+)"', svg).group(1).split()
    (x0, y0), (x1, y1) = ([float(v) for v in p.split(",")] for p in points)
    assert x0 < x1 and y0 > y1  # later epochs right, higher accuracy up
    assert "no accuracy history" in curve_svg([("seed 0", None)])


def _gallery_images(page: Path) -> list[tuple[str, str]]:
    """(src, caption) of each gallery figure of a page."""
    return re.findall(r'<figure class="gallery"><img src="([^"]+)" alt="[^"]*"><figcaption>([^<]*)</figcaption>',
                      page.read_text())


def test_method_pages_show_the_galleries_beside_the_rows(synthetic_site):
    out, _ = synthetic_site
    assert _gallery_images(out / "method-em.html") == [("gallery/em-seed0.png", "seed 0"),
                                                       ("gallery/em-seed1.png", "seed 1")]
    assert (out / "gallery" / "em-seed1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _gallery_images(out / "method-ops.html") == [("gallery/ops-seed0.png", "seed 0")]  # no rows of seed 5
    assert not (out / "gallery" / "ops-seed5.png").exists()
    assert "no gallery in the folders given" in (out / "method-clean.html").read_text()


def test_galleries_of_run_folders_are_copied_once_per_picture(tmp_path):
    runs = [tmp_path / "a", tmp_path / "b"]
    _write_rows(runs[0] / "results.jsonl", [_full("em", "none", 0, 0.12)])
    _write_rows(runs[1] / "results.jsonl", [_full("em", "jpeg10", 0, 0.5)])
    first = _write_galleries(runs[0], ["em"], [0])
    (runs[1] / GALLERY_DIR).mkdir()
    (runs[1] / GALLERY_DIR / "em-seed0.png").write_bytes(first["em-seed0.png"])  # the same picture: shown once
    written = write_site(runs, tmp_path / "site")
    assert _gallery_images(tmp_path / "site" / "method-em.html") == [("gallery/em-seed0.png", "seed 0")]
    assert tmp_path / "site" / "gallery" / "em-seed0.png" in written

    _write_galleries(runs[1], ["ops", "em"], [0])  # another picture under the same name: kept apart
    write_site(runs, tmp_path / "site2")
    shown = _gallery_images(tmp_path / "site2" / "method-em.html")
    assert len(shown) == 2 and shown[0] == ("gallery/em-seed0.png", "seed 0")
    assert re.fullmatch(r"gallery/em-seed0-[0-9a-f]{6}\.png", shown[1][0])
    assert (tmp_path / "site2" / shown[1][0]).read_bytes() == (runs[1] / GALLERY_DIR / "em-seed0.png").read_bytes()


def test_html_in_row_fields_is_escaped(synthetic_site):
    out, _ = synthetic_site
    text = "".join(p.read_text() for p in out.glob("*.html"))
    assert "<script>window" not in text and "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in text
    for raw in ("<img src=x", "<b>L2</b>", "<i>10</i>", "<u>l2</u>"):
        assert raw not in text
        assert raw.replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;") in text


def test_pages_only_link_files_of_the_site(published_site, synthetic_site):
    for out in (published_site, synthetic_site[0]):
        for page in out.glob("*.html"):
            for target in re.findall(r'(?:src|href)="([^"]*)"', page.read_text()):
                file = target.partition("#")[0]
                assert not file or (out / file).is_file() and (out / file).resolve().is_relative_to(out.resolve()), \
                    f"{page.name} links {target}"
        assert "url(" not in (out / "style.css").read_text() and "http" not in (out / "site.js").read_text()


# ---- headless Chromium over the DevTools protocol ----

class Browser:
    """Just enough of the Chrome DevTools protocol: navigate, evaluate, click, screenshot; console errors, thrown
    exceptions and requested URLs are recorded."""

    def __init__(self, binary: str, profile: Path) -> None:
        import websocket

        self.log = (profile / "chromium.log").open("wb")
        self.process = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--no-default-browser-check", "--remote-debugging-port=0", "--remote-allow-origins=*",
             f"--user-data-dir={profile}", "--window-size=1280,900", "about:blank"],
            stdout=self.log, stderr=subprocess.STDOUT)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"Chromium did not start its DevTools endpoint; see {profile / 'chromium.log'}")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as response:
            page = next(t for t in json.load(response) if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self.next_id, self.events = 0, []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")

    def _receive(self) -> dict:
        message = json.loads(self.ws.recv())
        if "method" in message:
            self.events.append(message)
        return message

    def send(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = self._receive()
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def wait_for(self, event: str, since: int) -> dict:
        while True:
            for message in self.events[since:]:
                if message["method"] == event:
                    return message
            self._receive()

    def open(self, url: str) -> None:
        since = len(self.events)
        self.send("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired", since)

    def eval(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def click(self, selector: str, navigates: bool = False) -> None:
        """A real mouse click (pressed and released) in the middle of the element; with `navigates`, wait for the
        page it opens to load."""
        box = self.eval(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
                        "e.scrollIntoView({block: 'center', inline: 'center'}); const r = e.getBoundingClientRect(); "
                        "return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        x, y = box
        since = len(self.events)
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)
        if navigates:
            self.wait_for("Page.loadEventFired", since)
        else:
            self.eval("new Promise(r => requestAnimationFrame(() => setTimeout(r, 50)))")

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))

    def errors(self) -> list[str]:
        found = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.exceptionThrown":
                found.append(str(p["exceptionDetails"]))
            elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                found.append(" ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif e["method"] == "Log.entryAdded" and p["entry"].get("level") == "error":
                found.append(f"{p['entry'].get('text')} {p['entry'].get('url', '')}")
            elif e["method"] == "Network.loadingFailed":
                found.append(f"failed to load: {p.get('errorText')}")
        return found

    def requested(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"]

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    binary = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    if binary is None:
        pytest.skip(f"no Chromium binary on PATH (looked for {', '.join(BROWSERS)}); "
                    "install it with `apt-get install chromium` (.ci/run tries to)")
    pytest.importorskip("websocket", reason="websocket-client is not installed (pip install -e '.[test]')")
    chromium = Browser(binary, tmp_path_factory.mktemp("chromium-profile"))
    yield chromium
    chromium.close()


MEASURED = ["psnr_db", "ssim", "linf_255", "l2", "threat", "budget_class", "class_rank"]  # the CSV's last columns


def _measured(expected: pd.DataFrame) -> list[str]:
    """The CSV's measure columns, which must be its last ones (DETECT_COLUMN too, where the board has `detect` rows)."""
    measured = [*MEASURED, *([DETECT_COLUMN] if DETECT_COLUMN in expected.columns else [])]
    assert list(expected.columns[-len(measured):]) == measured
    return measured


def _sorted_methods(csv: Path, column: str, descending: bool) -> list[str]:
    """The order the page should show after sorting by `column`: numbers ascending (descending), gaps last, stable."""
    table = pd.read_csv(csv, index_col="method")
    values = [(m, table.at[m, column]) for m in table.index]
    present = [(m, v) for m, v in values if not pd.isna(v)]
    present.sort(key=lambda mv: -mv[1] if descending else mv[1])
    return [m for m, _ in present] + [m for m, v in values if pd.isna(v)]


READ_TABLE = """Array.from(document.querySelectorAll('#board tbody tr')).map(tr =>
    [tr.cells[0].textContent.trim(), Array.from(tr.cells).slice(1).map(td => td.getAttribute('data-value'))])"""


def _check_in_browser(browser: Browser, site: Path, csv: Path, sort_column: str, cell: tuple[str, str],
                      screenshot: Path) -> None:
    browser.open((site / "index.html").as_uri())
    browser.click("#boards a[href$='.html']", navigates=True)
    assert browser.eval("location.pathname").endswith("board.html")
    expected = pd.read_csv(csv, index_col="method")
    shown = browser.eval(READ_TABLE)
    assert [m for m, _ in shown] == list(expected.index)
    accuracies = [c for c in expected.columns if c not in _measured(expected)]
    heads = browser.eval("Array.from(document.querySelectorAll('#board thead th')).map(th => th.textContent)")[1:]
    assert heads[:2] == ["worst", "mean"]  # the ranking is the first thing in view
    for method, values in shown:
        by_head = dict(zip(heads, values))
        for column in accuracies:
            want, value = expected.at[method, column], by_head[column]
            assert (value == "") if pd.isna(want) else float(value) == pytest.approx(want, abs=1e-9), (method, column)

    psnr = f"#board thead th:nth-child({heads.index('PSNR (dB)') + 2})"
    browser.click(psnr)
    assert [m for m, _ in browser.eval(READ_TABLE)] == _sorted_methods(csv, "psnr_db", descending=False)
    header = f"#board thead th:nth-child({heads.index(sort_column) + 2})"
    browser.click(header)
    assert [m for m, _ in browser.eval(READ_TABLE)] == _sorted_methods(csv, sort_column, descending=False)
    assert browser.eval(f"document.querySelector({json.dumps(header)}).getAttribute('aria-sort')") == "ascending"
    browser.click(header)
    assert [m for m, _ in browser.eval(READ_TABLE)] == _sorted_methods(csv, sort_column, descending=True)
    browser.click("#board thead th:nth-child(1)")  # by method name
    names = [m for m, _ in browser.eval(READ_TABLE)]
    assert names == sorted(names, key=str.lower)

    method, column = cell
    panel = f"section.panel[data-method={json.dumps(method)}][data-countermeasure={json.dumps(column)}]"
    panel_id = browser.eval(f"document.querySelector({json.dumps(panel)}).id")
    assert browser.eval(f"getComputedStyle(document.getElementById('{panel_id}')).display") == "none"
    browser.click(f"#board a[href='#{panel_id}']")
    assert browser.eval("location.hash") == f"#{panel_id}"
    visible = browser.eval(f"""(() => {{ const p = document.getElementById('{panel_id}');
        const svg = p.querySelector('svg.curve'); const line = svg && svg.querySelector('polyline');
        return [getComputedStyle(p).display, svg ? svg.getBoundingClientRect().height : 0,
                line ? line.getAttribute('points').split(' ').length : 0]; }})()""")
    assert visible[0] != "none" and visible[1] > 50 and visible[2] >= 2
    browser.screenshot(screenshot)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert browser.errors() == []
    assert all(url.startswith(("file://", "data:", "about:")) for url in browser.requested()), browser.requested()
    assert browser.eval("typeof window.__pwned") == "undefined"


def test_published_site_in_chromium(browser, published_site, tmp_path):
    _check_in_browser(browser, published_site, PUBLISHED / "cifar10-quick.csv", "none", ("em", "jpeg10"),
                      tmp_path / "published-board.png")
    browser.open((published_site / "compare.html").as_uri())
    assert "reproduced" in browser.eval("document.getElementById('facts').textContent")
    assert browser.errors() == []


def test_synthetic_site_in_chromium(browser, synthetic_site, tmp_path):
    out, files = synthetic_site
    _check_in_browser(browser, out, files / "leaderboard.csv", "grayscale", ("em", "none"),
                      tmp_path / "synthetic-board.png")
    assert browser.eval("document.querySelector('#board tbody').textContent").count("failed") == 1
    browser.open((out / "index.html").as_uri())
    assert EVIL in browser.eval("document.getElementById('methods').textContent")  # shown as text, not run
    browser.click("#methods a[href='method-em.html']", navigates=True)
    images = browser.eval("Array.from(document.querySelectorAll('figure.gallery img')).map(i => "
                          "[i.getAttribute('src'), i.complete, i.naturalWidth, i.getBoundingClientRect().width])")
    assert [src for src, *_ in images] == ["gallery/em-seed0.png", "gallery/em-seed1.png"]
    width = Image.open(out / "gallery" / "em-seed0.png").size[0]
    assert all(complete and natural == width and shown > 0 for _, complete, natural, shown in images), images
    browser.screenshot(tmp_path / "synthetic-method.png")
    assert browser.errors() == []
