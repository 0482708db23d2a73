"""The HTML report: data shaping without a browser, the CLI paths, and the page itself in headless Chromium."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import write

from scanner.cli import cli
from scanner.html_report import DocText, load_texts, render_html, report_data, write_html
from scanner.schema import DOCUMENTS, PAIRS, conform

TEXTS = {
    "a.txt": "Alpha opens the essay here. The queen lays two thousand eggs in a single day. "
             "Bees dance to tell the hive where the food is. A closing line of a.",
    "b.txt": "Beta has its own opening. The queen can lay two thousand eggs in one day. "
             "Bees dance to tell the hive where the food is. A closing line of b.",
    "c.txt": "Alpha opens the essay here, said c. Nothing else is shared.",
}


def _docs_table(folder: Path, texts: dict[str, str]) -> pa.Table:
    rows = []
    for doc, text in texts.items():
        raw = text.encode("utf-8")
        rows.append({"doc": doc, "path": str(folder / doc), "status": "scanned", "reason": None, "format": "text",
                     "encoding": "utf-8", "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest(),
                     "chars": len(text), "sentences": text.count(". ") + 1, "flagged_sentences": 0, "flagged_share": 0.0})
    return conform(pa.Table.from_pylist(rows), DOCUMENTS, "documents")


def _row(texts, doc_a, i_a, sent_a, doc_b, i_b, sent_b, score, match):
    sa, sb = texts[doc_a].index(sent_a), texts[doc_b].index(sent_b)
    return {"doc_a": doc_a, "index_a": i_a, "start_a": sa, "end_a": sa + len(sent_a), "text_a": sent_a,
            "doc_b": doc_b, "index_b": i_b, "start_b": sb, "end_b": sb + len(sent_b), "text_b": sent_b,
            "cosine": 0.95, "score": score, "match": match, "reason": "test"}


def _pairs_table(texts: dict[str, str]) -> pa.Table:
    return conform(pa.Table.from_pylist([
        _row(texts, "a.txt", 1, "The queen lays two thousand eggs in a single day.",
             "b.txt", 1, "The queen can lay two thousand eggs in one day.", 0.85, "paraphrase"),
        _row(texts, "a.txt", 2, "Bees dance to tell the hive where the food is.",
             "b.txt", 2, "Bees dance to tell the hive where the food is.", 1.0, "exact"),
        _row(texts, "a.txt", 0, "Alpha opens the essay here.", "c.txt", 0, "Alpha opens the essay here, said c.",
             0.6, "paraphrase"),
        _row(texts, "a.txt", 3, "A closing line of a.", "b.txt", 3, "A closing line of b.", 0.2, "rejected"),
    ]), PAIRS, "pairs")


@pytest.fixture
def report_files(tmp_path):
    folder = tmp_path / "docs"
    for name, text in TEXTS.items():
        write(folder / name, text)
    return folder, _pairs_table(TEXTS), _docs_table(folder, TEXTS)


def test_report_data_ranks_pairs_and_places_highlights(report_files):
    _folder, pairs, docs = report_files
    data = report_data(pairs, docs, load_texts(docs), {"threshold": 0.5, "counts": {"flagged_pairs": 3}})
    ids = [d["id"] for d in data["docs"]]
    ranked = [(ids[p["a"]], ids[p["b"]]) for p in data["pairs"]]
    assert ranked == [("a.txt", "b.txt"), ("a.txt", "c.txt")]  # c shares 1 of 2 sentences, b 2 of 4: b wins on count
    first = data["pairs"][0]
    assert [m[4] for m in first["matches"]] == ["exact", "paraphrase"]  # best score first; rejected left out
    assert (first["exact_pairs"], first["paraphrase_pairs"]) == (1, 1)
    a = data["docs"][ids.index("a.txt")]
    assert a["text"] == TEXTS["a.txt"] and a["note"] is None
    for start, end, text in a["flagged"].values():
        assert a["text"][start:end] == text
    assert 3 not in a["flagged"]  # the rejected sentence is not highlighted
    json.dumps(data)  # JSON-ready


def test_offsets_are_in_utf16_units_for_javascript(tmp_path):
    texts = {"a.txt": "Emoji 🐝 first. The queen lays eggs every day.", "b.txt": "The queen lays eggs every day."}
    for name, text in texts.items():
        write(tmp_path / name, text)
    pairs = conform(pa.Table.from_pylist([_row(texts, "a.txt", 1, "The queen lays eggs every day.", "b.txt", 0,
                                               "The queen lays eggs every day.", 1.0, "exact")]), PAIRS, "pairs")
    docs = _docs_table(tmp_path, texts)
    data = report_data(pairs, docs, load_texts(docs))
    a = next(d for d in data["docs"] if d["id"] == "a.txt")
    start, end, _ = a["flagged"][1]
    utf16 = a["text"].encode("utf-16-le")
    assert utf16[2 * start : 2 * end].decode("utf-16-le") == "The queen lays eggs every day."


def test_missing_or_changed_documents_are_said_and_their_sentences_kept(report_files, tmp_path):
    folder, pairs, docs = report_files
    (folder / "b.txt").write_text("edited after the scan", encoding="utf-8")
    (folder / "c.txt").unlink()
    texts = load_texts(docs)
    assert texts["a.txt"].text == TEXTS["a.txt"]
    assert texts["b.txt"].text is None and "changed since the scan" in texts["b.txt"].note
    assert texts["c.txt"].text is None and "not found" in texts["c.txt"].note
    data = report_data(pairs, docs, texts)
    c = next(d for d in data["docs"] if d["id"] == "c.txt")
    assert [t for _, _, t in c["flagged"].values()] == ["Alpha opens the essay here, said c."]
    # --root finds documents moved elsewhere, by their id
    moved = tmp_path / "moved"
    write(moved / "c.txt", TEXTS["c.txt"])
    assert load_texts(docs, root=moved)["c.txt"].text == TEXTS["c.txt"]


def test_page_is_self_contained_and_text_cannot_close_the_script():
    hostile = "Evil </script><script>alert(1)</script> text."
    data = {"meta": {}, "pairs": [], "docs": [{"id": "x", "sentences": 1, "text": hostile, "note": None, "flagged": {}}]}
    page = render_html(data, title="<b>t</b>")
    assert page.count("</script>") == 2  # the data element's and the code's own
    assert "&lt;b&gt;t&lt;/b&gt;" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "the page must not load anything"
    assert "@import" not in page and "url(" not in page


FAST = ["--engine", "local", "--embedder", "hashing", "--min-cosine", "0.3", "--threshold", "1.0", "--no-cache"]


def test_scan_html_and_report_command_write_the_same_page(report_files, tmp_path):
    folder, _, _ = report_files
    out = tmp_path / "r.parquet"
    first = CliRunner().invoke(cli, [str(folder), "--out", str(out), "--html", str(tmp_path / "scan.html"), *FAST],
                               catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert f"HTML report: {tmp_path / 'scan.html'}" in first.output
    second = CliRunner().invoke(cli, ["report", str(out), "--html", str(tmp_path / "again.html")], catch_exceptions=False)
    assert second.exit_code == 0, second.output
    data = [json.loads(re.search(r'id="report-data">(.*?)</script>', (tmp_path / n).read_text()).group(1))
            for n in ("scan.html", "again.html")]
    assert data[0]["pairs"] == data[1]["pairs"] and data[0]["docs"] == data[1]["docs"]
    assert [p["exact_pairs"] for p in data[0]["pairs"]] == [1]  # the one identical sentence
    assert data[0]["docs"][0]["text"] is not None


def test_report_command_needs_the_docs_sidecar(report_files, tmp_path):
    _folder, pairs, _docs = report_files
    out = tmp_path / "r.parquet"
    pq.write_table(pairs, out)
    result = CliRunner().invoke(cli, ["report", str(out), "--html", str(tmp_path / "r.html")])
    assert result.exit_code == 3 and "r.docs.parquet" in result.output
    result = CliRunner().invoke(cli, ["report", str(tmp_path / "nope.parquet"), "--html", str(tmp_path / "r.html")])
    assert result.exit_code == 3 and "does not exist" in result.output


# --- in a real browser --------------------------------------------------------------------------------------------

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
BROWSER_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-quic", "--window-size=1400,900"]


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("chromium and chromedriver are not installed: apt-get install -y chromium chromium-driver "
                    "(.ci/run does this) to run the HTML report's browser tests")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="scanner-chromium-")
    for arg in [*BROWSER_ARGS, f"--user-data-dir={profile}"]:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _marks(driver, side=None):
    selector = f"#side-{side} mark" if side else "mark"
    return driver.find_elements("css selector", selector)


def _set_min_score(driver, value):
    driver.execute_script("const s = document.getElementById('min-score'); s.value = arguments[0];"
                          "s.dispatchEvent(new Event('input'));", value)


def test_browser_highlights_links_and_filters(browser, report_files, tmp_path):
    folder, pairs, docs = report_files
    page = write_html(pairs, docs, tmp_path / "report.html", metadata={"threshold": 0.5})
    browser.get(page.as_uri())
    assert browser.execute_script("return document.querySelectorAll('#pairs li').length") == 2
    # the top pair is open: a.txt and b.txt side by side, two highlights each, coloured by kind
    marks_a = {m.get_attribute("id"): m for m in _marks(browser, "a")}
    assert set(marks_a) == {"a-1", "a-2"} and {m.get_attribute("id") for m in _marks(browser, "b")} == {"b-1", "b-2"}
    assert marks_a["a-2"].get_attribute("class") == "exact" and marks_a["a-1"].get_attribute("class") == "paraphrase"
    assert marks_a["a-2"].text == "Bees dance to tell the hive where the food is."
    colours = {m.get_attribute("class"): m.value_of_css_property("background-color") for m in marks_a.values()}
    assert colours["exact"] != colours["paraphrase"]
    assert "score 0.850" in marks_a["a-1"].get_attribute("title")  # the score on hover
    # clicking a highlight marks its partner in the other document and targets it
    marks_a["a-1"].click()
    assert "active" in browser.find_element("id", "b-1").get_attribute("class")
    assert "active" not in browser.find_element("id", "b-2").get_attribute("class")
    assert browser.execute_script("return location.hash") == "#b-1"
    browser.find_element("id", "b-2").click()
    assert "active" in browser.find_element("id", "a-2").get_attribute("class")
    shot = tmp_path / "report.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 1000
    # the score filter hides weaker matches and the pairs left without any
    _set_min_score(browser, "0.9")
    assert [m.get_attribute("id") for m in _marks(browser, "a")] == ["a-2"]
    assert browser.find_element("id", "shown").text == "1 of 2 document pairs shown"
    _set_min_score(browser, "0")
    browser.find_element("css selector", "input.kind[value=exact]").click()
    assert [m.get_attribute("id") for m in _marks(browser, "a")] == ["a-1"]
    browser.find_element("css selector", "input.kind[value=paraphrase]").click()
    assert _marks(browser) == [] and "No document pairs pass" in browser.find_element("id", "view").text
    # the second pair, with c.txt gone since the scan: a note, and its flagged sentence still shown
    (folder / "c.txt").unlink()
    browser.get(write_html(pairs, docs, tmp_path / "report2.html").as_uri())
    browser.find_elements("css selector", "#pairs li")[1].click()
    side_b = browser.find_element("id", "side-b")
    assert "file not found" in side_b.text and "Alpha opens the essay here, said c." in side_b.text


def test_browser_scrolls_the_partner_into_its_column(browser, tmp_path):
    filler = " ".join(f"Filler sentence number {k} says nothing." for k in range(300))
    texts = {"a.txt": "The shared sentence is right here.", "b.txt": f"{filler} The shared sentence is right here."}
    for name, text in texts.items():
        write(tmp_path / name, text)
    pairs = conform(pa.Table.from_pylist([_row(texts, "a.txt", 0, "The shared sentence is right here.", "b.txt", 300,
                                               "The shared sentence is right here.", 1.0, "exact")]), PAIRS, "pairs")
    browser.get(write_html(pairs, _docs_table(tmp_path, texts), tmp_path / "long.html").as_uri())
    column = browser.find_element("id", "side-b")
    partner = browser.find_element("id", "b-300")
    inside = ("const c = arguments[0].getBoundingClientRect(), p = arguments[1].getBoundingClientRect();"
              "return p.top >= c.top && p.bottom <= c.bottom;")
    assert not browser.execute_script(inside, column, partner)
    browser.find_element("id", "a-0").click()
    assert browser.execute_script(inside, column, partner)
    assert browser.execute_script("return window.scrollY") == 0


def test_browser_pages_through_thousands_of_pairs(browser, tmp_path):
    names = [f"doc{k:02d}.txt" for k in range(64)]
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            rows.append({"doc_a": a, "index_a": 0, "start_a": 0, "end_a": 10, "text_a": f"sentence of {a}",
                         "doc_b": b, "index_b": 0, "start_b": 0, "end_b": 10, "text_b": f"sentence of {b}",
                         "cosine": 0.9, "score": 0.5 + (len(rows) % 50) / 100, "match": "paraphrase", "reason": "t"})
    pairs = conform(pa.Table.from_pylist(rows), PAIRS, "pairs")
    docs = _docs_table(tmp_path, dict.fromkeys(names, "One sentence."))
    data = report_data(pairs, docs, {n: DocText(None, "not kept") for n in names})
    assert len(data["pairs"]) == 2016
    page = tmp_path / "big.html"
    page.write_text(render_html(data), encoding="utf-8")
    browser.get(page.as_uri())
    items = browser.find_elements("css selector", "#pairs li")
    assert len(items) == 25 and browser.find_element("id", "page").text == "page 1 of 81"
    browser.find_element("id", "next").click()
    assert browser.find_element("id", "page").text == "page 2 of 81"
    assert browser.find_elements("css selector", "#pairs li")[0].get_attribute("data-rank") == "26"
    _set_min_score(browser, "0.95")
    shown = sum(1 for r in rows if r["score"] >= 0.95)
    assert browser.find_element("id", "shown").text == f"{shown} of 2016 document pairs shown"
    _set_min_score(browser, "0")
    browser.find_element("id", "doc-filter").send_keys("DOC07")  # pairs naming doc07: 63 of them
    assert browser.find_element("id", "shown").text == "63 of 2016 document pairs shown"
    assert browser.find_element("id", "page").text == "page 1 of 3"
    assert all("doc07.txt" in li.text for li in browser.find_elements("css selector", "#pairs li"))


def test_browser_says_when_nothing_was_flagged(browser, tmp_path):
    page = tmp_path / "empty.html"
    page.write_text(render_html(report_data(PAIRS.empty_table(), DOCUMENTS.empty_table(), {})), encoding="utf-8")
    browser.get(page.as_uri())
    assert browser.find_element("id", "view").text == "Nothing was flagged in this report."
    assert browser.find_element("id", "page").text == "page 1 of 1"


def test_page_opens_without_network_requests(browser, report_files, tmp_path):
    _folder, pairs, docs = report_files
    page = write_html(pairs, docs, tmp_path / "report.html")
    browser.get(page.as_uri())
    urls = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert urls == []
    assert os.path.getsize(page) < 50_000


def test_browser_hover_notes_numbers_that_differ(browser, tmp_path):
    texts = {"a.txt": "The bridge was built in 1850 by the town council.",
             "b.txt": "The town council built the bridge in 1852."}
    for name, text in texts.items():
        write(tmp_path / name, text)
    pairs = conform(pa.Table.from_pylist([_row(texts, "a.txt", 0, texts["a.txt"], "b.txt", 0, texts["b.txt"], 0.9,
                                               "paraphrase")]), PAIRS, "pairs")
    browser.get(write_html(pairs, _docs_table(tmp_path, texts), tmp_path / "numbers.html").as_uri())
    title = browser.find_element("id", "a-0").get_attribute("title")
    assert "score 0.900" in title and title.endswith("numbers differ: 1850 vs 1852")
