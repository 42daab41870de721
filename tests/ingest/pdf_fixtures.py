"""PDFs the PDF tests make: text placed by hand in content streams, encrypted copies, scanned copies."""

from __future__ import annotations

import io

import pypdf
import pypdfium2
from pypdf.generic import ContentStream, DictionaryObject, NameObject

PAGE_W, PAGE_H = 612, 792
FONTS = {"F1": "Helvetica", "F2": "Helvetica-Bold"}
Text = tuple[float, float, str, float, str]
"""One run of text: x, y (PDF points from the bottom left), font (F1 regular, F2 bold), size, text."""


def _literal(text: str) -> bytes:
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return b"(" + escaped.encode("cp1252") + b")"


def text_pdf(pages: list[list[Text]], title: str = "Made by a test") -> bytes:
    """A PDF whose pages hold exactly these runs of text (standard fonts, WinAnsi), written by pypdf."""
    writer = pypdf.PdfWriter()
    fonts = DictionaryObject(
        {
            NameObject(f"/{key}"): DictionaryObject(
                {
                    NameObject("/Type"): NameObject("/Font"),
                    NameObject("/Subtype"): NameObject("/Type1"),
                    NameObject("/BaseFont"): NameObject(f"/{name}"),
                    NameObject("/Encoding"): NameObject("/WinAnsiEncoding"),
                }
            )
            for key, name in FONTS.items()
        }
    )
    for runs in pages:
        page = writer.add_blank_page(PAGE_W, PAGE_H)
        ops = [b"BT"]
        for x, y, font, size, text in runs:
            ops.append(f"/{font} {size:g} Tf 1 0 0 1 {x:g} {y:g} Tm ".encode() + _literal(text) + b" Tj")
        ops.append(b"ET")
        stream = ContentStream(None, None)
        stream.set_data(b"\n".join(ops) + b"\n")
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): fonts})
        page.replace_contents(stream)
    writer.add_metadata({"/Title": title})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def paragraph(x: float, y: float, lines: list[str], size: float = 11, leading: float = 14) -> list[Text]:
    """Lines of body text from (x, y) down."""
    return [(x, y - i * leading, "F1", size, line) for i, line in enumerate(lines)]


def encrypted(data: bytes, *, user_password: str, algorithm: str) -> bytes:
    """A copy of the PDF encrypted by pypdf (`AES-256`, `AES-128`, `RC4-128`, ...)."""
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(data))
    writer.encrypt(user_password=user_password, owner_password="owner secret", algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def scanned_copy(data: bytes, dpi: int = 150) -> bytes:
    """The PDF as a scanner makes it: every page rendered to a grey image, and a page holding only that."""
    source = pypdfium2.PdfDocument(data)
    copy = pypdfium2.PdfDocument.new()
    try:
        for index in range(len(source)):
            page = source[index]
            width, height = page.get_size()
            image = pypdfium2.PdfImage.new(copy)
            image.set_bitmap(page.render(scale=dpi / 72, grayscale=True))
            image.set_matrix(pypdfium2.PdfMatrix().scale(width, height))
            scanned = copy.new_page(width, height)
            scanned.insert_obj(image)
            scanned.gen_content()
        out = io.BytesIO()
        copy.save(out)
        return out.getvalue()
    finally:
        copy.close()
        source.close()
