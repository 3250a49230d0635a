"""The report's :class:`~fedsim.report.document.Document` as a PDF (fpdf2), walking the same sections as the HTML.

Set in DejaVu Sans, the Unicode TrueType font matplotlib ships, so €, ë, é, ≥, ε and − print as they are; ragged
right (fpdf2 justifies by default, which stretches short Dutch lines). Every section title becomes a PDF bookmark
at its level; each chapter (level 1) after page one starts a new page.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import matplotlib
from fpdf import FPDF
from fpdf.fonts import FontFace

from fedsim.report.document import Block, Bullets, Document, Figure, Paragraph, Section, Table

# fpdf2 subsets the font through fontTools, which logs every table it touches at INFO: a researcher's terminal
# (`fedsim demo` logs at INFO) would end in a screen of 'glyf subsetted' lines.
logging.getLogger("fontTools").setLevel(logging.WARNING)

FONT = "DejaVu"
_FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf", "I": "DejaVuSans-Oblique.ttf"}
_HEADING_SIZE = {1: 15.0, 2: 13.0, 3: 11.0}
_TONE_FILL = {"note": (238, 244, 250), "warning": (255, 244, 229)}
BODY = 9.5
LINE = 5.0


def _new_pdf(doc: Document) -> FPDF:
    pdf = FPDF(format="A4")
    pdf.set_margins(18, 16, 18)
    pdf.set_auto_page_break(True, margin=16)
    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    for style, name in _FONT_FILES.items():
        pdf.add_font(FONT, style, str(fonts / name))
    pdf.set_title(doc.title)
    pdf.set_lang(doc.lang)
    pdf.set_creator("fedsim report")
    return pdf


def _heading(pdf: FPDF, section: Section, first: bool) -> None:
    if section.level == 1 and not first:
        pdf.add_page()
    else:
        pdf.ln(3)
    pdf.start_section(section.title, level=section.level - 1)
    pdf.set_font(FONT, "B", _HEADING_SIZE.get(section.level, 11.0))
    pdf.multi_cell(0, 7, section.title, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)


def _paragraph(pdf: FPDF, block: Paragraph) -> None:
    pdf.set_font(FONT, "", BODY)
    fill = _TONE_FILL.get(block.tone)
    if fill is not None:
        pdf.set_fill_color(*fill)
    pdf.multi_cell(
        0, LINE, block.text, fill=fill is not None, padding=2 if fill else 0, align="L", new_x="LMARGIN", new_y="NEXT"
    )
    pdf.ln(1.5)


def _bullets(pdf: FPDF, block: Bullets) -> None:
    pdf.set_font(FONT, "", BODY)
    for item in block.items:
        pdf.set_x(pdf.l_margin + 3)
        pdf.multi_cell(pdf.epw - 3, LINE, "• " + item, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1.5)


def _table(pdf: FPDF, block: Table) -> None:
    pdf.set_font(FONT, "", 7.5)
    aligns = tuple("RIGHT" if n else "LEFT" for n in block.numeric) or "LEFT"
    heading = FontFace(emphasis="BOLD", fill_color=(243, 245, 248))
    with pdf.table(
        text_align=aligns, headings_style=heading, line_height=3.8, padding=0.8, borders_layout="HORIZONTAL_LINES"
    ) as table:
        table.row(block.header)
        for row in block.rows:
            table.row(row)
    pdf.ln(2)


def _figure(pdf: FPDF, block: Figure) -> None:
    pdf.image(io.BytesIO(block.png), w=pdf.epw * 0.92, x=pdf.l_margin)
    pdf.set_font(FONT, "I", 8)
    pdf.multi_cell(0, 4, block.caption, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)


def _block(pdf: FPDF, block: Block) -> None:
    if isinstance(block, Paragraph):
        _paragraph(pdf, block)
    elif isinstance(block, Bullets):
        _bullets(pdf, block)
    elif isinstance(block, Table):
        _table(pdf, block)
    else:
        _figure(pdf, block)


def pdf_bytes(doc: Document) -> bytes:
    """The document as PDF bytes: title and subtitle, then every section in order."""
    pdf = _new_pdf(doc)
    pdf.add_page()
    pdf.set_font(FONT, "B", 17)
    pdf.multi_cell(0, 8, doc.title, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, "", 9)
    pdf.multi_cell(0, 5, doc.subtitle, align="L", new_x="LMARGIN", new_y="NEXT")
    for i, section in enumerate(doc.sections):
        _heading(pdf, section, first=i == 0)
        for block in section.blocks:
            _block(pdf, block)
    return bytes(pdf.output())


def write_pdf(doc: Document, path: Path) -> Path:
    path.write_bytes(pdf_bytes(doc))
    return path
